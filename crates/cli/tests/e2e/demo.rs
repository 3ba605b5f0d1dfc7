//! `quarry demo` with no model configured: the first screen is an answer —
//! the demo workspace holds each table's insights and the malaria pack's
//! results before anyone asks anything.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::clean_llm_env;

/// Start `quarry ARGS` in `dir` and wait for the URL it serves; stopped when dropped.
fn start(dir: &std::path::Path, args: &[&str]) -> (Stop, String) {
    let mut child = clean_llm_env(&mut Command::new(env!("CARGO_BIN_EXE_quarry")))
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("quarry starts");
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("a line").expect("utf8");
        if let Some(u) = line.split_whitespace().find(|w| w.starts_with("http://")) {
            break u.to_string();
        }
    };
    (Stop(child), url)
}

#[test]
fn the_demo_opens_on_insights_and_the_malaria_pack_with_no_model() {
    let tmp = tempfile::tempdir().unwrap();
    let (_stop, url) = start(tmp.path(), &["demo", "--port", "0", "--dir", "files", "--data", "data"]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let c = crate::server::client();
        let get = |path: String| {
            let c = c.clone();
            let url = url.clone();
            async move { c.get(format!("{url}{path}")).send().await.unwrap().json::<Value>().await.unwrap() }
        };
        assert_eq!(get("/api/config".into()).await["model"], Value::Null, "no model");
        let ws = get("/api/workspaces".into()).await[0]["id"].as_str().unwrap().to_string();
        let deadline = Instant::now() + Duration::from_secs(60);
        let analyses = loop {
            let a = get(format!("/api/workspaces/{ws}/analyses")).await;
            if a.as_array().is_some_and(|l| !l.is_empty()) || Instant::now() > deadline {
                break a;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        let names: Vec<&str> =
            analyses.as_array().unwrap().iter().filter_map(|a| a["analysis"]["name"].as_str()).collect();
        assert!(names.contains(&"tpr_by_admin_1-clinic_reports_2024_monthly_data"), "{names:?}");
        let tpr = analyses
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["analysis"]["name"] == "tpr_by_admin_1-clinic_reports_2024_monthly_data")
            .unwrap();
        assert_eq!(tpr["runs"][0]["ok"], true, "{tpr}");
        assert_eq!(tpr["runs"][0]["table"]["rows"].as_array().unwrap().len(), 4);
        let ins = get(format!("/api/workspaces/{ws}/tables/facility_months_2024/insights")).await;
        let kinds: Vec<&str> = ins["findings"].as_array().unwrap().iter().filter_map(|f| f["kind"].as_str()).collect();
        assert!(kinds.contains(&"impossible_values") && kinds.contains(&"missing_periods"), "{kinds:?}");
    });
}

/// Stops the server when the test ends, passed or not.
struct Stop(std::process::Child);

impl Drop for Stop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `quarry serve --watch DIR`: a file arriving in DIR becomes a table of the
/// "Watched" workspace, with no upload.
#[test]
fn a_watched_folder_loads_what_arrives() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let (_stop, url) =
        start(tmp.path(), &["serve", "--port", "0", "--data", "data", "--no-python", "--watch", "inbox"]);
    std::fs::write(inbox.join("arrivals.csv"), "state,tested\nKano,5\nLagos,7\n").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let c = crate::server::client();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let list: Value = c.get(format!("{url}/api/workspaces")).send().await.unwrap().json().await.unwrap();
            if let Some(w) = list.as_array().unwrap().iter().find(|w| w["name"] == "Watched") {
                let id = w["id"].as_str().unwrap();
                let tables: Value =
                    c.get(format!("{url}/api/workspaces/{id}/tables")).send().await.unwrap().json().await.unwrap();
                if tables.as_array().is_some_and(|t| t.iter().any(|t| t["name"] == "arrivals" && t["rows"] == 2)) {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "the watched file was not loaded");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
}
