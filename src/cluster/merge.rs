//! Answers for the whole cluster from the parts its tasks give (SPEC §8
//! "Queries"): every task must have answered exactly once, counts are
//! summed (never ratios averaged), breach pages are merged in the list's
//! order, and the answer is as of the oldest watermark involved.

use crate::engine::query::{Breach, BreachKey, BreachPage, Partial};
use crate::model::time::Millis;

/// One task's part of an answer.
#[derive(Debug, Clone)]
pub struct TaskPart<T> {
    pub task: u32,
    /// The task's watermark when it answered.
    pub watermark: Option<Millis>,
    pub part: T,
}

/// Why no answer for the whole cluster can be given now: a task has not
/// answered (unowned, restoring, or its owner unreachable), or answered
/// twice (its ownership is moving). The caller answers 503 with
/// `Retry-After`, never a partial number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    #[error("tasks {0:?} did not answer")]
    Missing(Vec<u32>),
    #[error("tasks {0:?} answered more than once")]
    Twice(Vec<u32>),
    #[error("task {0} is not one of the {1} tasks")]
    Unknown(u32, u32),
}

/// An answer for the whole cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged<T> {
    pub value: T,
    /// The oldest watermark of the tasks that answered (`as_of`).
    pub watermark: Option<Millis>,
}

/// Checks that each of `tasks` tasks answered exactly once.
pub fn coverage<T>(tasks: u32, parts: &[TaskPart<T>]) -> Result<(), Unavailable> {
    let mut seen = vec![0u32; tasks as usize];
    for p in parts {
        let n = seen
            .get_mut(p.task as usize)
            .ok_or(Unavailable::Unknown(p.task, tasks))?;
        *n += 1;
    }
    let twice: Vec<u32> = (0..tasks).filter(|t| seen[*t as usize] > 1).collect();
    if !twice.is_empty() {
        return Err(Unavailable::Twice(twice));
    }
    let missing: Vec<u32> = (0..tasks).filter(|t| seen[*t as usize] == 0).collect();
    if !missing.is_empty() {
        return Err(Unavailable::Missing(missing));
    }
    Ok(())
}

fn oldest<T>(parts: &[TaskPart<T>]) -> Option<Millis> {
    parts.iter().filter_map(|p| p.watermark).min()
}

/// The sum of every task's partial for one scope and window.
pub fn partials(tasks: u32, parts: &[TaskPart<Partial>]) -> Result<Merged<Partial>, Unavailable> {
    coverage(tasks, parts)?;
    let mut sum = Partial::default();
    for p in parts {
        sum.add(p.part);
    }
    Ok(Merged {
        value: sum,
        watermark: oldest(parts),
    })
}

/// One page of the breaches list from every task's page for the same
/// query (each at most `limit` long, after the same cursor): the first
/// `limit` entries of their union in the list's order, and the cursor of
/// the next page. Exact because each task gave its own first `limit`: no
/// entry of the cluster's first `limit` can be missing from them.
pub fn breach_pages(
    tasks: u32,
    parts: Vec<TaskPart<BreachPage>>,
    limit: Option<usize>,
) -> Result<Merged<BreachPage>, Unavailable> {
    coverage(tasks, &parts)?;
    let watermark = oldest(&parts);
    let mut more = parts.iter().any(|p| p.part.next.is_some());
    let mut all: Vec<(BreachKey, Breach)> = parts
        .into_iter()
        .flat_map(|p| p.part.breaches)
        .map(|b| (BreachKey::of(&b), b))
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(limit) = limit {
        if all.len() > limit {
            more = true;
            all.truncate(limit);
        }
    }
    let next = if more {
        all.last().map(|(k, _)| k.clone())
    } else {
        None
    };
    Ok(Merged {
        value: BreachPage {
            breaches: all.into_iter().map(|(_, b)| b).collect(),
            next,
        },
        watermark,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::query::{BreachQuery, Numbers, Scope};
    use crate::engine::Engine;
    use crate::generate::{GenSettings, Generator};
    use crate::model::event::decode;
    use crate::model::time::{parse_rfc3339, DAY};

    fn part<T>(task: u32, part: T) -> TaskPart<T> {
        TaskPart {
            task,
            watermark: Some(i64::from(task)),
            part,
        }
    }

    #[test]
    fn an_answer_needs_every_task_exactly_once() {
        let p = |t| part(t, Partial::default());
        assert_eq!(coverage(3, &[p(0), p(1), p(2)]), Ok(()));
        assert_eq!(
            coverage(3, &[p(0), p(2)]),
            Err(Unavailable::Missing(vec![1]))
        );
        assert_eq!(
            coverage(3, &[p(0), p(1), p(1), p(2)]),
            Err(Unavailable::Twice(vec![1]))
        );
        assert_eq!(coverage(3, &[p(0), p(7)]), Err(Unavailable::Unknown(7, 3)));
        assert_eq!(
            partials(3, &[p(2), p(0), p(1)]).map(|m| m.watermark),
            Ok(Some(0)),
            "as of the oldest watermark"
        );
    }

    /// Four task engines and one engine, fed the same generated workload.
    fn engines() -> (Engine, Vec<Engine>, Millis) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/slastream.toml");
        let cfg = crate::config::load(&path).expect("shipped config");
        let mut one = Engine::new(&cfg);
        let mut tasks: Vec<Engine> = (0..4)
            .map(|p| Engine::for_task(&cfg, Some((p, 4))))
            .collect();
        let start = parse_rfc3339("2026-11-01T00:00:00Z").expect("instant");
        let wall = Millis::MAX / 2;
        for g in Generator::new(GenSettings::from_config(&cfg, 3, 60, 2.0, start, 3 * DAY)) {
            let ev = decode(g.json.as_bytes()).expect("generated events decode");
            one.apply(&ev, wall);
            for e in &mut tasks {
                e.apply(&ev, wall);
            }
        }
        let now = one.watermark().expect("events") + 3_600_000;
        (one, tasks, now)
    }

    #[test]
    fn merged_numbers_and_breach_pages_are_those_of_one_engine() {
        let (one, tasks, now) = engines();
        let all = Scope::Filter {
            segment: None,
            timezone: None,
        };
        let (from, to) = (now - 30 * DAY, now);
        for s in 0..4 {
            let parts: Vec<TaskPart<Partial>> = tasks
                .iter()
                .enumerate()
                .map(|(t, e)| TaskPart {
                    task: t as u32,
                    watermark: e.watermark(),
                    part: e.partial(s, &all, from, to, now),
                })
                .collect();
            let merged = partials(4, &parts).expect("every task answered");
            let objective = one.objective_at(s, &all, to.min(now) - 1);
            let got = Numbers::compute(
                objective,
                merged.value.total,
                merged.value.good,
                merged.value.excluded,
            );
            let want = one.numbers(s, &all, from, to, now);
            assert!((got.total - want.total).abs() < 1e-6, "slo {s}");
            assert!((got.good - want.good).abs() < 1e-6, "slo {s}");
            assert_eq!(merged.watermark, one.watermark());
        }

        // Pages of 7 put end to end are the whole list.
        let whole = one.breaches(None, None, now);
        assert!(whole.len() > 20, "the workload breaches ({})", whole.len());
        let mut got = Vec::new();
        let mut after: Option<BreachKey> = None;
        loop {
            let q = BreachQuery {
                after: after.clone(),
                limit: Some(7),
                ..BreachQuery::default()
            };
            let parts: Vec<TaskPart<BreachPage>> = tasks
                .iter()
                .enumerate()
                .map(|(t, e)| part(t as u32, e.breaches_page(&q, now)))
                .collect();
            let page = breach_pages(4, parts, Some(7)).expect("every task answered");
            assert!(page.value.breaches.len() <= 7);
            got.extend(page.value.breaches);
            match page.value.next {
                Some(k) => after = Some(k),
                None => break,
            }
        }
        let key = |b: &Breach| (BreachKey::of(b), b.stopped_at, b.elapsed_seconds.to_bits());
        assert_eq!(
            got.iter().map(key).collect::<Vec<_>>(),
            whole.iter().map(key).collect::<Vec<_>>()
        );
    }
}
