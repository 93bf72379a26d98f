//! Change control of SLO definitions (SPEC §3 Definition versions): what
//! differs between the definitions a state last ran with and those of a new
//! start, and whether each difference re-judges what was already processed.

use serde::{Deserialize, Serialize};

use crate::model::slo::SloDef;
use crate::model::time::Millis;

/// One difference between the SLO definitions a state last ran with and
/// those it starts with: an audit entry `what: "slo_definition"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DefinitionChange {
    /// Position in the audit log, shared with the run-time exclusions.
    pub seq: u64,
    /// The start that found the difference.
    pub at: Millis,
    pub slo: String,
    /// `None`: the SLO is new.
    pub before: Option<SloDef>,
    /// `None`: the SLO was removed.
    pub after: Option<SloDef>,
    /// The change alters the terms in force at some instant before `at`, so
    /// it re-judges what was already processed.
    pub retroactive: bool,
}

impl DefinitionChange {
    /// `added`, `removed` or `changed`.
    pub fn action(&self) -> &'static str {
        match (&self.before, &self.after) {
            (None, _) => "added",
            (_, None) => "removed",
            _ => "changed",
        }
    }

    /// One line for the log and `check-config --state`.
    pub fn describe(&self) -> String {
        let what = match (&self.before, &self.after) {
            (Some(b), Some(a)) => changed_keys(b, a).join(", "),
            _ => String::new(),
        };
        let mut line = format!("SLO `{}` {}", self.slo, self.action());
        if !what.is_empty() {
            line.push_str(&format!(" ({what})"));
        }
        line.push_str(if self.retroactive {
            ": retroactive, re-judges what was already processed"
        } else {
            ": not retroactive, the new terms start after this start"
        });
        line
    }
}

/// The keys whose value differs between two definitions of one SLO.
pub fn changed_keys(b: &SloDef, a: &SloDef) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut check = |name: &'static str, differs: bool| {
        if differs {
            out.push(name);
        }
    };
    check("description", b.description != a.description);
    check("indicator", b.indicator != a.indicator);
    check("window", b.window != a.window);
    check("filter", b.filter != a.filter);
    check("clock", b.clock != a.clock);
    check("pausable", b.pausable != a.pausable);
    check("severities", b.severities != a.severities);
    check("objective", b.objective != a.objective);
    check(
        "segment_objectives",
        b.segment_objectives != a.segment_objectives,
    );
    check("threshold_ms", b.threshold_ms != a.threshold_ms);
    check("targets", b.targets != a.targets);
    check("segment_targets", b.segment_targets != a.segment_targets);
    check("history", b.history != a.history);
    out
}

/// Whether replacing `before` by `after` changes the terms in force at any
/// instant before `start`. Keys without history (indicator, filter, window,
/// clock, pausable, severities) make a different SLO: any change of them
/// re-judges everything. A new or removed SLO does too.
pub fn retroactive(before: Option<&SloDef>, after: Option<&SloDef>, start: Millis) -> bool {
    let (Some(b), Some(a)) = (before, after) else {
        return true;
    };
    if b.indicator != a.indicator
        || b.window != a.window
        || b.filter != a.filter
        || b.clock != a.clock
        || b.pausable != a.pausable
        || b.severities != a.severities
    {
        return true;
    }
    // Terms are constant between `until` instants: comparing both at the
    // start of every piece either side delimits covers every instant.
    std::iter::once(Millis::MIN)
        .chain(b.history.iter().map(|v| v.until))
        .chain(a.history.iter().map(|v| v.until))
        .filter(|t| *t < start)
        .any(|t| b.terms_at(t) != a.terms_at(t))
}

/// Every difference between the definitions `before` (as the state last ran
/// with them) and `after`, found at `start`: changed and added SLOs in the
/// order of `after`, then removed ones. Sequence numbers start at `seq`.
pub fn diff_definitions(
    before: &[SloDef],
    after: &[SloDef],
    start: Millis,
    mut seq: u64,
) -> Vec<DefinitionChange> {
    let mut out = Vec::new();
    let mut push = |b: Option<&SloDef>, a: Option<&SloDef>, name: &str| {
        out.push(DefinitionChange {
            seq,
            at: start,
            slo: name.to_string(),
            before: b.cloned(),
            after: a.cloned(),
            retroactive: retroactive(b, a, start),
        });
        seq += 1;
    };
    for a in after {
        let b = before.iter().find(|b| b.name == a.name);
        if b != Some(a) {
            push(b, Some(a), &a.name);
        }
    }
    for b in before {
        if !after.iter().any(|a| a.name == b.name) {
            push(Some(b), None, &b.name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::model::time::parse_rfc3339;

    fn slo(extra: &str) -> SloDef {
        let text = format!(
            "[[slos]]\nname = \"first-response\"\nindicator = \"ticket_response\"\n\
             objective = 0.95\nwindow = \"month\"\ntargets = {{ P1 = \"1h\", P2 = \"4h\" }}\n{extra}"
        );
        crate::config::parse(&text, &[], Path::new("."))
            .unwrap_or_else(|e| panic!("{e}"))
            .slos
            .remove(0)
    }

    fn start() -> Millis {
        parse_rfc3339("2026-11-15T12:00:00Z").unwrap()
    }

    const OLD_TERMS: &str = "objective = 0.9\ntargets = { P1 = \"2h\", P2 = \"8h\" }\n";

    #[test]
    fn no_change_no_entry() {
        assert!(diff_definitions(&[slo("")], &[slo("")], start(), 1).is_empty());
    }

    #[test]
    fn a_history_entry_ending_in_the_future_is_not_retroactive() {
        // Ran with 0.9 / 2h; now the old terms stay until December, the new
        // ones start then.
        let before = SloDef {
            objective: 0.9,
            targets: [Some(2 * 3_600_000), Some(8 * 3_600_000), None, None],
            ..slo("")
        };
        let after = slo(&format!(
            "[[slos.history]]\nuntil = \"2026-12-01T00:00:00Z\"\n{OLD_TERMS}change = \"CR-7\"\n"
        ));
        let d = diff_definitions(&[before], &[after], start(), 5);
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].seq, d[0].action()), (5, "changed"));
        assert!(!d[0].retroactive, "{}", d[0].describe());
        assert!(d[0].describe().contains("not retroactive"));
    }

    #[test]
    fn a_history_entry_ending_in_the_past_is_retroactive() {
        let before = SloDef {
            objective: 0.9,
            targets: [Some(2 * 3_600_000), Some(8 * 3_600_000), None, None],
            ..slo("")
        };
        let after = slo(&format!(
            "[[slos.history]]\nuntil = \"2026-11-01T00:00:00Z\"\n{OLD_TERMS}change = \"CR-7\"\n"
        ));
        let d = diff_definitions(&[before], &[after], start(), 1);
        assert!(d[0].retroactive);
    }

    #[test]
    fn an_edit_in_place_is_retroactive_and_a_description_is_not() {
        let before = slo("");
        let edited = SloDef {
            objective: 0.97,
            ..slo("")
        };
        assert!(
            diff_definitions(std::slice::from_ref(&before), &[edited], start(), 1)[0].retroactive
        );
        let described = SloDef {
            description: "new words".into(),
            ..slo("")
        };
        let d = diff_definitions(std::slice::from_ref(&before), &[described], start(), 1);
        assert!(!d[0].retroactive);
        assert!(d[0].describe().contains("(description)"));
        // Keys without history make a different SLO.
        let window = SloDef {
            window: crate::model::slo::SloWindow::Rolling(30 * 86_400_000),
            ..slo("")
        };
        assert!(diff_definitions(&[before], &[window], start(), 1)[0].retroactive);
    }

    #[test]
    fn added_and_removed_slos_are_retroactive() {
        let other = SloDef {
            name: "other".into(),
            ..slo("")
        };
        let d = diff_definitions(&[slo("")], &[other], start(), 1);
        assert_eq!(
            d.iter()
                .map(|c| (c.slo.as_str(), c.action(), c.retroactive, c.seq))
                .collect::<Vec<_>>(),
            [
                ("other", "added", true, 1),
                ("first-response", "removed", true, 2)
            ]
        );
    }
}
