//! Golden end-to-end answers: the shipped sample events replayed into real
//! RocksDB, every answer compared with `tests/golden/answers.json`.
//! `UPDATE_GOLDEN=1` rewrites the file (review the diff before committing).

use crate::common::*;

#[tokio::test]
async fn shipped_sample_replay_matches_golden_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = shipped_config(dir.path());
    let engine = replay_into(&cfg, &root().join("config/sample-events.ndjson"));
    let app = app(engine, golden_now(), "");
    let got = answers(&app, &cfg).await;
    let got_json: Vec<serde_json::Value> = got
        .iter()
        .map(|(uri, body)| {
            let body = serde_json::from_str(body)
                .unwrap_or_else(|_| serde_json::Value::String(body.clone()));
            serde_json::json!({"uri": uri, "body": body})
        })
        .collect();
    let path = root().join("tests/golden/answers.json");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let text = serde_json::to_string_pretty(&got_json).expect("json");
        std::fs::write(&path, text + "\n").expect("write golden");
    }
    let want: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("golden file present"))
            .expect("golden json");
    assert_eq!(want.len(), got_json.len(), "number of answers");
    for (w, g) in want.iter().zip(&got_json) {
        assert_eq!(w, g, "answer for {} differs from the golden file", w["uri"]);
    }
}
