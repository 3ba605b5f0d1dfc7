//! `quarry serve` through HTTP: the API, its OpenAPI document, event streams
//! and resumption, what a restart or a shutdown leaves in the store, upload
//! errors, and isolation between users. Real workers, the fake LLM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use quarry_fake_llm::{FakeLlm, Reply, Script};
use quarry_llm::LlmConfig;
use quarry_server::{AppState, ServerConfig};
use serde_json::{json, Value};

use crate::common::{fake_llm, launcher};

pub(crate) struct Running {
    pub(crate) url: String,
    pub(crate) state: Arc<AppState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
}

impl Running {
    pub(crate) async fn stop(mut self) -> Arc<AppState> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(20), self.done).await;
        self.state
    }
}

pub(crate) async fn serve(data: &Path, llm: Result<LlmConfig, String>, bind: [u8; 4]) -> Running {
    serve_with(data, llm, bind, 2 << 30).await
}

async fn serve_with(data: &Path, llm: Result<LlmConfig, String>, bind: [u8; 4], max_upload: u64) -> Running {
    serve_cfg(data, llm, bind, |c| c.max_upload_bytes = max_upload).await
}

pub(crate) async fn serve_cfg(
    data: &Path,
    llm: Result<LlmConfig, String>,
    bind: [u8; 4],
    set: impl FnOnce(&mut ServerConfig),
) -> Running {
    let addr = SocketAddr::from((bind, 0));
    let mut cfg = ServerConfig::new(data.to_path_buf(), addr, llm);
    cfg.require_login = bind != [127, 0, 0, 1];
    set(&mut cfg);
    let state = AppState::new(cfg, launcher(), Err("off in this test".into())).expect("state");
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.expect("listen");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let st = state.clone();
    let done = tokio::spawn(async move {
        let _ = quarry_server::serve(st, listener, async {
            let _ = rx.await;
        })
        .await;
    });
    Running { url, state, stop: Some(tx), done }
}

pub(crate) fn client() -> reqwest::Client {
    quarry_llm::install_crypto();
    reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client")
}

pub(crate) async fn get(c: &reqwest::Client, url: &str) -> (u16, Value) {
    let r = c.get(url).send().await.expect("get");
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

pub(crate) async fn post(c: &reqwest::Client, url: &str, body: Value) -> (u16, Value) {
    let r = c.post(url).json(&body).send().await.expect("post");
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

pub(crate) async fn upload(c: &reqwest::Client, base: &str, ws: &str, file: &Path) -> (u16, Value) {
    let name = file.file_name().expect("name").to_string_lossy().to_string();
    let bytes = std::fs::read(file).expect("file");
    let r =
        c.post(format!("{base}/api/workspaces/{ws}/datasets?name={name}")).body(bytes).send().await.expect("upload");
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

/// Read the event stream until a `done` event (or `n` seconds).
pub(crate) async fn events_until_done(c: &reqwest::Client, url: &str) -> Vec<Value> {
    use futures_util::StreamExt;
    let r = c.get(url).send().await.expect("sse");
    let mut stream = r.bytes_stream();
    let mut buf = String::new();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while let Ok(Some(chunk)) = tokio::time::timeout_at(deadline, stream.next()).await {
        buf.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
        while let Some(i) = buf.find("\n\n") {
            let block: String = buf.drain(..i + 2).collect();
            for line in block.lines() {
                if let Some(d) = line.strip_prefix("data: ") {
                    let v: Value = serde_json::from_str(d).expect("event json");
                    let done = v["event"]["type"] == "done";
                    out.push(v);
                    if done {
                        return out;
                    }
                }
            }
        }
    }
    out
}

pub(crate) fn demo(dir: &Path) -> Vec<PathBuf> {
    quarry_testdata::write_demo(&dir.join("files")).expect("demo")
}

pub(crate) fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt")
}

#[test]
fn a_conversation_survives_a_restart_and_events_resume() {
    rt().block_on(async {
        let tmp = tempfile::tempdir().expect("tempdir");
        let files = demo(tmp.path());
        let sql = "SELECT count(*) AS n FROM population_2024";
        let fake = FakeLlm::start(Script::new(vec![
            Reply::tool("run_sql", json!({"sql": sql})),
            Reply::tool("final_answer", json!({"answer": "Counted the states."})),
        ]));
        let data = tmp.path().join("data");
        let s = serve(&data, Ok(fake_llm(&fake, Duration::from_secs(30))), [127, 0, 0, 1]).await;
        let c = client();
        let (_, ws) = get(&c, &format!("{}/api/workspaces", s.url)).await;
        let ws = ws[0]["id"].as_str().expect("ws").to_string();
        let (status, d) = upload(&c, &s.url, &ws, &files[3]).await;
        assert_eq!(status, 200, "{d}");
        assert_eq!(d["tables"], json!(["population_2024"]));
        let (_, conv) = post(&c, &format!("{}/api/workspaces/{ws}/conversations", s.url), json!({})).await;
        let id = conv["id"].as_str().expect("id").to_string();
        let (status, acc) =
            post(&c, &format!("{}/api/conversations/{id}/questions", s.url), json!({"question": "How many states?"}))
                .await;
        assert_eq!(status, 202, "{acc}");
        let live = events_until_done(&c, &format!("{}/api/conversations/{id}/events", s.url)).await;
        let kinds: Vec<&str> = live.iter().filter_map(|e| e["event"]["type"].as_str()).collect();
        assert!(kinds.starts_with(&["started", "context_built", "code_proposed"]), "{kinds:?}");
        assert_eq!(kinds.last(), Some(&"done"));
        let answer = live.iter().find(|e| e["event"]["type"] == "answer").expect("answer");
        assert_eq!(answer["event"]["answer"]["table"]["rows"][0][0], 4);
        // Resume from the middle: only later events come back.
        let mid = live[2]["seq"].as_i64().expect("seq");
        let rest = events_until_done(&c, &format!("{}/api/conversations/{id}/events?after={mid}", s.url)).await;
        assert_eq!(rest.len(), live.iter().filter(|e| e["seq"].as_i64().unwrap_or(0) > mid).count());
        // Asking and exporting are on the workspace's audit trail.
        let r = c.get(format!("{}/api/conversations/{id}/questions/1/export/csv", s.url)).send().await.expect("export");
        assert_eq!(r.status().as_u16(), 200);
        let (_, log) = get(&c, &format!("{}/api/workspaces/{ws}/audit", s.url)).await;
        let actions: Vec<(&str, &str)> = log
            .as_array()
            .expect("log")
            .iter()
            .map(|e| (e["action"].as_str().unwrap(), e["target"].as_str().unwrap()))
            .collect();
        assert_eq!(
            &actions[1..],
            [("ask", "How many states?"), ("export", format!("quarry-{id}-q1.csv").as_str())],
            "{log}"
        );
        // Exports of the answer.
        let csv = c.get(format!("{}/api/conversations/{id}/questions/1/export/csv", s.url)).send().await.expect("csv");
        assert_eq!(csv.text().await.expect("text"), "n\n4\n");
        let xlsx = c.get(format!("{}/api/conversations/{id}/questions/1/export/xlsx", s.url)).send().await.expect("x");
        assert!(xlsx.bytes().await.expect("bytes").starts_with(b"PK"));
        let report = c.get(format!("{}/api/conversations/{id}/export/html", s.url)).send().await.expect("html");
        assert_eq!(report.status(), 200);
        assert_eq!(report.headers()["content-type"], "text/html; charset=utf-8");
        let page = report.text().await.expect("text");
        assert!(page.contains("How many states?") && page.contains(sql) && page.contains("Counted the states."));
        let nb = c.get(format!("{}/api/conversations/{id}/questions/1/export/ipynb", s.url)).send().await.expect("nb");
        let nb: Value = nb.json().await.expect("notebook json");
        let setup: String =
            nb["cells"][1]["source"].as_array().expect("cells").iter().filter_map(Value::as_str).collect();
        // The notebook names the data relative to the workspace, never the server's directories.
        assert!(
            setup.contains("\"population_2024\": \"") && setup.contains("data/tables/population_2024/v1.parquet"),
            "{setup}"
        );
        assert!(!setup.contains(data.to_str().expect("path")), "{setup}");
        let bad = c.get(format!("{}/api/conversations/{id}/export/docx", s.url)).send().await.expect("docx");
        assert_eq!(bad.status(), 400);
        // The whole conversation as a PDF, printed by Chromium — or, without one, the reason.
        let pdf = c.get(format!("{}/api/conversations/{id}/export/pdf", s.url)).send().await.expect("pdf");
        if quarry_sandbox::pdf::chromium().is_some() {
            assert_eq!(pdf.status(), 200);
            assert!(pdf.bytes().await.expect("bytes").starts_with(b"%PDF"));
        } else {
            assert_eq!(pdf.status(), 503);
            assert!(pdf.text().await.expect("text").contains("install it"));
        }
        let none = c.get(format!("{}/api/conversations/{id}/questions/9/export/html", s.url)).send().await.expect("q9");
        assert_eq!(none.status(), 404);
        let state = s.stop().await;
        drop(state);
        // A question cut off by a crash: started, never done.
        {
            let store = quarry_store::Store::open(&data.join("quarry.sqlite")).expect("store");
            store
                .append_event(
                    &id,
                    2,
                    &quarry_agent::Event::Started {
                        question: "lost".into(),
                        privacy: quarry_agent::Privacy::Strict,
                        model: "m".into(),
                    },
                )
                .expect("append");
        }
        let s = serve(&data, Ok(fake_llm(&fake, Duration::from_secs(30))), [127, 0, 0, 1]).await;
        let (status, again) = get(&c, &format!("{}/api/conversations/{id}", s.url)).await;
        assert_eq!(status, 200);
        let events = again["events"].as_array().expect("events");
        assert_eq!(events.len(), live.iter().filter(|e| e["seq"].as_i64().unwrap_or(0) > 0).count() + 2);
        let last = events.last().expect("last");
        assert_eq!(last["event"]["type"], "done");
        assert_eq!(last["event"]["interrupted"], true);
        s.stop().await;
    });
}

#[test]
fn shutdown_cancels_questions_in_flight_and_stores_it() {
    rt().block_on(async {
        let tmp = tempfile::tempdir().expect("tempdir");
        let files = demo(tmp.path());
        let mut slow = Reply::text("too late");
        slow.delay_ms = 30_000;
        let fake = FakeLlm::start(Script::new(vec![slow]));
        let data = tmp.path().join("data");
        let s = serve(&data, Ok(fake_llm(&fake, Duration::from_secs(30))), [127, 0, 0, 1]).await;
        let c = client();
        let (_, ws) = get(&c, &format!("{}/api/workspaces", s.url)).await;
        let ws = ws[0]["id"].as_str().expect("ws").to_string();
        assert_eq!(upload(&c, &s.url, &ws, &files[3]).await.0, 200);
        let (_, conv) = post(&c, &format!("{}/api/workspaces/{ws}/conversations", s.url), json!({})).await;
        let id = conv["id"].as_str().expect("id").to_string();
        let (status, _) =
            post(&c, &format!("{}/api/conversations/{id}/questions", s.url), json!({"question": "slow"})).await;
        assert_eq!(status, 202);
        // A second question while the first runs is refused.
        let (status, _) =
            post(&c, &format!("{}/api/conversations/{id}/questions", s.url), json!({"question": "again"})).await;
        assert_eq!(status, 409);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let t0 = std::time::Instant::now();
        let state = s.stop().await;
        assert!(t0.elapsed() < Duration::from_secs(15), "shutdown took {:?}", t0.elapsed());
        let kinds: Vec<String> =
            state.store.events(&id, 0).expect("events").into_iter().map(|e| e.event.kind().to_string()).collect();
        assert_eq!(kinds.last().map(String::as_str), Some("done"), "{kinds:?}");
        assert!(kinds.contains(&"cancelled".to_string()), "{kinds:?}");
    });
}

#[test]
fn bad_uploads_and_requests_get_clear_errors() {
    rt().block_on(async {
        let tmp = tempfile::tempdir().expect("tempdir");
        let s = serve_with(
            &tmp.path().join("data"),
            Err("no model configured: set QUARRY_LLM_MODEL".into()),
            [127, 0, 0, 1],
            64 << 10,
        )
        .await;
        let c = client();
        let (_, ws) = get(&c, &format!("{}/api/workspaces", s.url)).await;
        let ws = ws[0]["id"].as_str().expect("ws").to_string();
        let bad = tmp.path().join("report.xlsx");
        // A zip signature and then nothing a workbook has: a truncated download.
        std::fs::write(&bad, b"PK\x03\x04\x14\x00\x00\x00\x08\x00garbage that ends early").expect("write");
        let (status, e) = upload(&c, &s.url, &ws, &bad).await;
        assert_eq!(status, 422);
        assert!(e["error"].as_str().unwrap_or("").contains("report.xlsx"), "{e}");
        let empty = tmp.path().join("empty.csv");
        std::fs::write(&empty, b"").expect("write");
        assert_eq!(upload(&c, &s.url, &ws, &empty).await.0, 422);
        // Over the upload limit: refused while streaming, nothing kept.
        let big = tmp.path().join("big.csv");
        std::fs::write(&big, "a,b\n1,2\n".repeat(20_000)).expect("write");
        let (status, e) = upload(&c, &s.url, &ws, &big).await;
        assert_eq!(status, 413, "{e}");
        assert!(e["error"].as_str().unwrap_or("").contains("big.csv"), "{e}");
        let uploads = std::fs::read_dir(tmp.path().join("data/workspaces").join(&ws).join("uploads"))
            .map(|d| d.flatten().filter(|f| f.file_name().to_string_lossy().contains("big")).count())
            .unwrap_or(0);
        assert_eq!(uploads, 0);
        // Nothing configured: questions say how to configure a model; data calls work.
        let (_, conv) = post(&c, &format!("{}/api/workspaces/{ws}/conversations", s.url), json!({})).await;
        let id = conv["id"].as_str().expect("id");
        let (status, e) =
            post(&c, &format!("{}/api/conversations/{id}/questions", s.url), json!({"question": "hi"})).await;
        assert_eq!(status, 503);
        assert!(e["error"].as_str().unwrap_or("").contains("QUARRY_LLM_MODEL"), "{e}");
        let (status, e) = post(&c, &format!("{}/api/workspaces/{ws}/sql", s.url), json!({"sql": "DROP TABLE x"})).await;
        assert_eq!(status, 400, "{e}");
        let (status, _) = get(&c, &format!("{}/api/conversations/nope", s.url)).await;
        assert_eq!(status, 404);
        // The OpenAPI document lists the API.
        let (_, doc) = get(&c, &format!("{}/api/openapi.json", s.url)).await;
        for p in ["/api/datasets", "/api/workspaces/{ws}/datasets", "/api/conversations/{id}/events", "/api/login"] {
            assert!(doc["paths"].get(p).is_some(), "{p} missing from the OpenAPI document");
        }
        s.stop().await;
    });
}

#[test]
fn users_see_only_their_own_workspaces() {
    rt().block_on(async {
        let tmp = tempfile::tempdir().expect("tempdir");
        let files = demo(tmp.path());
        let data = tmp.path().join("data");
        {
            let store = quarry_store::Store::open(&data.join("quarry.sqlite")).expect("store");
            store.create_user("alice", Some("alice-password"), false).expect("alice");
            store.create_user("bob", Some("bob-password"), false).expect("bob");
        }
        let s = serve(&data, Err("none".into()), [0, 0, 0, 0]).await;
        let anon = client();
        assert_eq!(get(&anon, &format!("{}/api/workspaces", s.url)).await.0, 401);
        let (status, _) =
            post(&anon, &format!("{}/api/login", s.url), json!({"name": "alice", "password": "nope"})).await;
        assert_eq!(status, 401);
        let login = |name: &'static str| {
            let url = s.url.clone();
            async move {
                let (st, t) = post(
                    &client(),
                    &format!("{url}/api/login"),
                    json!({"name": name, "password": format!("{name}-password")}),
                )
                .await;
                assert_eq!(st, 200);
                let token = t["token"].as_str().expect("token").to_string();
                quarry_llm::install_crypto();
                let mut h = reqwest::header::HeaderMap::new();
                h.insert("authorization", format!("Bearer {token}").parse().expect("header"));
                reqwest::Client::builder().default_headers(h).build().expect("client")
            }
        };
        let alice = login("alice").await;
        let bob = login("bob").await;
        let (_, ws) = get(&alice, &format!("{}/api/workspaces", s.url)).await;
        let ws = ws[0]["id"].as_str().expect("ws").to_string();
        assert_eq!(upload(&alice, &s.url, &ws, &files[3]).await.0, 200);
        assert_eq!(upload(&bob, &s.url, &ws, &files[3]).await.0, 404, "bob cannot upload into alice's workspace");
        for path in [format!("/api/workspaces/{ws}/tables"), format!("/api/workspaces/{ws}/datasets")] {
            assert_eq!(get(&bob, &format!("{}{path}", s.url)).await.0, 404, "{path}");
            assert_eq!(get(&alice, &format!("{}{path}", s.url)).await.0, 200, "{path}");
        }
        let (_, list) = get(&bob, &format!("{}/api/datasets", s.url)).await;
        assert_eq!(list, json!([]));
        // POST /api/datasets goes to the caller's own workspace.
        let bytes = std::fs::read(&files[3]).expect("file");
        let r = bob.post(format!("{}/api/datasets?name=pop.csv", s.url)).body(bytes).send().await.expect("upload");
        assert_eq!(r.status().as_u16(), 200);
        let (_, list) = get(&bob, &format!("{}/api/datasets", s.url)).await;
        assert_eq!(list.as_array().map(Vec::len), Some(1));
        assert_ne!(list[0]["workspace"], json!(ws));
        // Only admins add users.
        let (status, _) =
            post(&bob, &format!("{}/api/users", s.url), json!({"name": "eve", "password": "eve-password"})).await;
        assert_eq!(status, 403);

        // The audit trail: who did what, in order; the owner's alone to read, as JSON or CSV.
        let sql = "SELECT count(*) AS n FROM population_2024";
        assert_eq!(post(&alice, &format!("{}/api/workspaces/{ws}/sql", s.url), json!({"sql": sql})).await.0, 200);
        let audit = format!("{}/api/workspaces/{ws}/audit", s.url);
        let (status, log) = get(&alice, &audit).await;
        assert_eq!(status, 200, "{log}");
        let got: Vec<(&str, &str, &str)> = log
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| (e["user"].as_str().unwrap(), e["action"].as_str().unwrap(), e["target"].as_str().unwrap()))
            .collect();
        let file = files[3].file_name().unwrap().to_string_lossy().to_string();
        assert_eq!(got, [("alice", "upload", file.as_str()), ("alice", "sql", sql)], "{log}");
        assert!(log[0]["at"].as_str().unwrap().ends_with('Z'));
        assert_eq!(get(&bob, &audit).await.0, 404, "bob cannot read alice's trail");
        let (_, bobs) = get(&bob, &format!("{}/api/workspaces", s.url)).await;
        let (_, bob_log) =
            get(&bob, &format!("{}/api/workspaces/{}/audit", s.url, bobs[0]["id"].as_str().unwrap())).await;
        assert_eq!(
            bob_log.as_array().map(|l| l.iter().map(|e| e["action"].clone()).collect::<Vec<_>>()),
            Some(vec![json!("upload")])
        );
        let csv = alice.get(format!("{audit}?format=csv")).send().await.expect("csv");
        assert!(csv.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
        let csv = csv.text().await.expect("text");
        assert!(csv.starts_with("at,user,action,target\n") && csv.contains(",alice,sql,"), "{csv}");
        assert_eq!(get(&alice, &format!("{audit}?format=xml")).await.0, 400);
        s.stop().await;
    });
}

// ------------------------------------------------------------ hardening

/// (Failure 3.) Another web page cannot drive a loopback server: cross-site and
/// "simple" uploads are refused and change nothing, a foreign Host name is
/// refused (DNS rebinding), and every response carries the security headers.
#[test]
fn other_origins_and_host_names_cannot_drive_a_loopback_server() {
    rt().block_on(async {
        let tmp = tempfile::tempdir().expect("tempdir");
        let files = demo(tmp.path());
        let data = tmp.path().join("data");
        let s = serve_cfg(&data, Err("none".into()), [127, 0, 0, 1], |c| {
            c.allowed_hosts = vec!["quarry.internal".into()];
        })
        .await;
        let c = client();
        let (_, ws) = get(&c, &format!("{}/api/workspaces", s.url)).await;
        let ws = ws[0]["id"].as_str().expect("ws").to_string();
        let pop = files.iter().find(|f| f.ends_with("population_2024.csv")).expect("pop");
        let bytes = std::fs::read(pop).expect("bytes");
        let url = format!("{}/api/workspaces/{ws}/datasets?name=pop.csv", s.url);
        // A form post or no-cors fetch from another site.
        for (ctype, origin) in [
            ("text/plain", Some("http://evil.example")),
            ("application/x-www-form-urlencoded", Some("http://evil.example")),
            ("application/octet-stream", Some("http://evil.example")),
            ("application/octet-stream", Some("null")),
            ("text/plain", None),
            ("application/x-www-form-urlencoded", None),
        ] {
            let mut r = c.post(&url).header("content-type", ctype).body(bytes.clone());
            if let Some(o) = origin {
                r = r.header("origin", o);
            }
            let r = r.send().await.expect("post");
            assert!([403, 415].contains(&r.status().as_u16()), "{ctype} from {origin:?}: {}", r.status());
        }
        let r = c.post(&url).header("sec-fetch-site", "cross-site").body(bytes.clone()).send().await.expect("post");
        assert_eq!(r.status(), 403);
        let (_, list) = get(&c, &format!("{}/api/workspaces/{ws}/datasets", s.url)).await;
        assert_eq!(list.as_array().map(Vec::len), Some(0), "nothing was uploaded: {list}");
        // DNS rebinding: the page's own name, not ours.
        for (host, ok) in [("evil.example:8080", false), ("quarry.internal:8080", true), ("localhost", true)] {
            let r =
                c.get(format!("{}/api/workspaces/{ws}/tables", s.url)).header("host", host).send().await.expect("get");
            assert_eq!(r.status().is_success(), ok, "{host}: {}", r.status());
        }
        // Our own page (same origin) and tools without Origin still work.
        let own = s.url.clone();
        let r =
            c.post(&url).header("origin", &own).header("content-type", "application/octet-stream").body(bytes.clone());
        assert_eq!(r.send().await.expect("own").status(), 200);
        let page = c.get(format!("{}/", s.url)).send().await.expect("page");
        let h = page.headers();
        assert!(h["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
        assert!(h["content-security-policy"].to_str().unwrap().contains("script-src 'self'"));
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "no-referrer");
        let api = c.get(format!("{}/api/config", s.url)).send().await.expect("api");
        assert!(api.headers()["content-security-policy"].to_str().unwrap().starts_with("default-src 'none'"));
        // Only 127.0.0.1 and ::1 are "local, no login".
        let cfg = ServerConfig::new(data.clone(), SocketAddr::from(([127, 0, 0, 2], 0)), Err("none".into()));
        assert!(cfg.require_login);
        s.stop().await;
    });
}

/// (Failure 4.) Failed logins are limited per account (and client), not for the whole
/// server; unknown users cost what known ones do; sessions expire; the
/// cookie has a Max-Age; tokens are listed and revocable.
#[test]
fn logins_are_limited_per_account_and_sessions_expire() {
    rt().block_on(async {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("data");
        {
            let store = quarry_store::Store::open(&data.join("quarry.sqlite")).expect("store");
            store.create_user("alice", Some("alice-password"), false).expect("alice");
            store.create_user("bob", Some("bob-password"), false).expect("bob");
        }
        let s = serve_cfg(&data, Err("none".into()), [0, 0, 0, 0], |c| {
            // Long enough for a login (argon2, in a debug build, on a busy
            // two-core machine) between two uses of the first session.
            c.session_idle = Duration::from_secs(6);
        })
        .await;
        let c = client();
        let login = |name: &str, pw: &str| {
            let (c, url, body) = (c.clone(), format!("{}/api/login", s.url), json!({"name": name, "password": pw}));
            async move { c.post(url).json(&body).send().await.expect("login") }
        };
        // Timing: an unknown user takes argon2 time too (within a factor of 3).
        let mut known = Vec::new();
        let mut unknown = Vec::new();
        for _ in 0..3 {
            let t = std::time::Instant::now();
            assert_eq!(login("bob", "wrong-password").await.status(), 401);
            known.push(t.elapsed());
            let t = std::time::Instant::now();
            assert_eq!(login("nobody-here", "wrong-password").await.status(), 401);
            unknown.push(t.elapsed());
        }
        known.sort();
        unknown.sort();
        assert!(unknown[1] * 3 >= known[1], "unknown {unknown:?} vs known {known:?}");
        for _ in 0..10 {
            assert_eq!(login("alice", "guess-guess").await.status(), 401);
        }
        assert_eq!(login("alice", "alice-password").await.status(), 429, "alice is locked for this client");
        let r = login("bob", "bob-password").await;
        assert_eq!(r.status(), 200, "bob is not locked out by alice's attacker");
        let cookie = r.headers()["set-cookie"].to_str().expect("cookie").to_string();
        assert!(cookie.contains("Max-Age=") && cookie.contains("HttpOnly"), "{cookie}");
        let token = r.json::<Value>().await.expect("json")["token"].as_str().expect("token").to_string();
        let auth = format!("Bearer {token}");
        let r = c.get(format!("{}/api/tokens", s.url)).header("authorization", &auth).send().await.expect("tokens");
        let list: Value = r.json().await.expect("json");
        assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
        assert_eq!(list[0]["kind"], "session");
        assert!(!list.to_string().contains(&token), "tokens are never listed");
        // A second session, revoked by id, stops working.
        let r2 = login("bob", "bob-password").await;
        let t2 = r2.json::<Value>().await.expect("json")["token"].as_str().expect("t").to_string();
        let r = c.get(format!("{}/api/tokens", s.url)).header("authorization", &auth).send().await.expect("tokens");
        let list: Value = r.json().await.expect("json");
        let id = list.as_array().expect("list").last().expect("one")["id"].as_str().expect("id").to_string();
        let r =
            c.delete(format!("{}/api/tokens/{id}", s.url)).header("authorization", &auth).send().await.expect("del");
        assert_eq!(r.status(), 200);
        let me = c.get(format!("{}/api/me", s.url)).header("authorization", format!("Bearer {t2}")).send().await;
        assert_eq!(me.expect("me").status(), 401);
        // Idle past the limit: the session has ended.
        let me = c.get(format!("{}/api/me", s.url)).header("authorization", &auth).send().await.expect("me");
        assert_eq!(me.status(), 200);
        // The store counts whole seconds, and a session ends idle *longer*
        // than the limit: past 7 s it has been idle 7 s by any rounding.
        tokio::time::sleep(Duration::from_millis(7100)).await;
        let me = c.get(format!("{}/api/me", s.url)).header("authorization", &auth).send().await.expect("me");
        assert_eq!(me.status(), 401);
        s.stop().await;
    });
}

/// (Failures 3 and 7.) Uploads as multipart (curl -F), names capped in bytes,
/// titles capped, error messages without the server's paths, and what a
/// killed upload left is cleared at the next start.
#[test]
fn uploads_multipart_long_names_and_leftovers() {
    rt().block_on(async {
        let tmp = tempfile::tempdir().expect("tempdir");
        let files = demo(tmp.path());
        let data = tmp.path().join("data");
        let s = serve(&data, Err("none".into()), [127, 0, 0, 1]).await;
        let c = client();
        let (_, ws) = get(&c, &format!("{}/api/workspaces", s.url)).await;
        let ws = ws[0]["id"].as_str().expect("ws").to_string();
        let pop = files.iter().find(|f| f.ends_with("population_2024.csv")).expect("pop");
        let bytes = std::fs::read(pop).expect("bytes");
        let mut body = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"pop.csv\"\r\nContent-Type: text/csv\r\n\r\n".to_vec();
        body.extend_from_slice(&bytes);
        body.extend_from_slice(b"\r\n--XyZ--\r\n");
        let r = c
            .post(format!("{}/api/workspaces/{ws}/datasets", s.url))
            .header("content-type", "multipart/form-data; boundary=XyZ")
            .body(body)
            .send()
            .await
            .expect("multipart");
        let status = r.status();
        let v: Value = r.json().await.expect("json");
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["file_name"], "pop.csv");
        let long = format!("{}.csv", "表".repeat(130));
        let r = c
            .post(format!("{}/api/workspaces/{ws}/datasets?name={long}", s.url))
            .body(bytes.clone())
            .send()
            .await
            .expect("long");
        let status = r.status();
        let v: Value = r.json().await.expect("json");
        assert_eq!(status, 200, "{v}");
        assert!(v["file_name"].as_str().expect("name").len() <= 120, "{v}");
        let uploads = data.join("workspaces").join(&ws).join("uploads");
        let leftovers = || {
            std::fs::read_dir(&uploads)
                .expect("dir")
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(".incoming-"))
                .count()
        };
        assert_eq!(leftovers(), 0);
        let r = c.post(format!("{}/api/workspaces/{ws}/datasets?name=bad.csv", s.url)).body(vec![0u8; 300]).send().await;
        let r = r.expect("bad");
        assert_eq!(r.status(), 422);
        let body = r.json::<Value>().await.expect("json");
        let msg = body["error"].as_str().expect("error").to_string();
        assert!(msg.starts_with("bad.csv: ") && !msg.contains(data.to_str().expect("path")), "{msg}");
        assert_eq!(body["code"], "file_not_tabular", "a stable code beside the message");
        assert_eq!(leftovers(), 0);
        let (st, _) =
            post(&c, &format!("{}/api/workspaces/{ws}/conversations", s.url), json!({"title": "x".repeat(900_000)})).await;
        assert_eq!(st, 400, "titles are capped");
        s.stop().await;
        // An upload killed mid-stream leaves `.incoming-*`; the next start clears it.
        std::fs::write(uploads.join(".incoming-deadbeef0000"), b"half an upload").expect("write");
        let s = serve(&data, Err("none".into()), [127, 0, 0, 1]).await;
        assert_eq!(leftovers(), 0);
        s.stop().await;
    });
}

/// (Failure 6.) An upload whose client goes away while it is being read stops its
/// ingest worker: nothing is committed behind the user's back.
#[test]
fn a_cancelled_upload_stops_its_worker() {
    rt().block_on(async {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("data");
        let s = serve(&data, Err("none".into()), [127, 0, 0, 1]).await;
        let c = client();
        let (_, ws) = get(&c, &format!("{}/api/workspaces", s.url)).await;
        let ws = ws[0]["id"].as_str().expect("ws").to_string();
        let mut csv = String::from("state,facility,tested,positive\n");
        for i in 0..400_000 {
            csv.push_str(&format!("State {},Facility {i},{},{}\n", i % 37, 100 + i % 900, i % 97));
        }
        let quick = reqwest::Client::builder().timeout(Duration::from_millis(700)).build().expect("client");
        let r = quick.post(format!("{}/api/workspaces/{ws}/datasets?name=big.csv", s.url)).body(csv).send().await;
        assert!(r.is_err(), "the client gave up before the load finished");
        let ws_data = data.join("workspaces").join(&ws).join("data");
        // It got as far as the ingest worker: the file arrived whole.
        assert!(data.join("workspaces").join(&ws).join("uploads/big.csv").exists());
        let workers = || {
            std::fs::read_dir("/proc")
                .expect("proc")
                .flatten()
                .filter(|e| {
                    let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
                    let cmd = String::from_utf8_lossy(&cmd).to_string();
                    cmd.contains("worker\0ingest") && cmd.contains(ws_data.to_str().expect("path"))
                })
                .count()
        };
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while workers() > 0 && std::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(workers(), 0, "the ingest worker was stopped");
        let (_, tables) = get(&c, &format!("{}/api/workspaces/{ws}/tables", s.url)).await;
        assert_eq!(tables.as_array().map(Vec::len), Some(0), "nothing was committed: {tables}");
        s.stop().await;
    });
}

/// A database that dies in the middle of a query fails that query with a
/// clear error, without a hang, and the server goes on serving: files,
/// other requests, and the same source once it is back.
#[test]
fn a_database_dying_mid_query_fails_that_query_and_the_server_keeps_serving() {
    use crate::sources::{Postgres, PG_PASSWORD};
    let Some(pg) = Postgres::start() else { return };
    pg.psql("CREATE TABLE big AS SELECT (g % 37)::text AS state, g AS n FROM generate_series(1, 3000000) g");
    rt().block_on(async {
        let tmp = tempfile::tempdir().expect("tempdir");
        let files = demo(tmp.path());
        let s = serve(&tmp.path().join("data"), Err("no model".into()), [127, 0, 0, 1]).await;
        let c = client();
        let (_, ws) = get(&c, &format!("{}/api/workspaces", s.url)).await;
        let ws = ws[0]["id"].as_str().expect("ws").to_string();
        assert_eq!(upload(&c, &s.url, &ws, &files[3]).await.0, 200);
        let url = pg.url(PG_PASSWORD, "postgres");
        let (status, v) =
            post(&c, &format!("{}/api/workspaces/{ws}/connections", s.url), json!({"name": "dhis", "url": url})).await;
        assert_eq!(status, 200, "{v}");

        let sql_url = format!("{}/api/workspaces/{ws}/sql", s.url);
        let (c2, u2) = (c.clone(), sql_url.clone());
        let slow = tokio::spawn(async move {
            post(&c2, &u2, json!({"sql": "SELECT state, sum(n) AS n FROM dhis.big GROUP BY state"})).await
        });
        // Stop PostgreSQL once the scan has reached it.
        let started = std::time::Instant::now();
        while !std::fs::read_to_string(&pg.log).unwrap_or_default().contains(r#"FROM "public".big"#) {
            assert!(started.elapsed() < Duration::from_secs(30), "the scan never reached PostgreSQL");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        pg.stop();
        let (status, e) = tokio::time::timeout(Duration::from_secs(60), slow).await.expect("no hang").expect("task");
        assert!((400..500).contains(&status), "{status} {e}");
        let msg = e["error"].as_str().unwrap_or_default();
        assert!(msg.contains("connection dhis"), "{e}");
        assert!(!e.to_string().contains(PG_PASSWORD), "{e}");

        // The server goes on: files answer, the source's own tables fail clearly.
        let (status, v) = post(&c, &sql_url, json!({"sql": "SELECT count(*) AS n FROM population_2024"})).await;
        assert_eq!(status, 200, "{v}");
        let (status, v) = post(&c, &sql_url, json!({"sql": "SELECT count(*) AS n FROM dhis.big"})).await;
        assert!(
            (400..500).contains(&status) && v["error"].as_str().unwrap_or_default().contains("host unreachable"),
            "{v}"
        );
        assert_eq!(get(&c, &format!("{}/api/workspaces", s.url)).await.0, 200);
        // Back up: the next query connects again and answers.
        pg.start_again();
        let (status, v) = post(&c, &sql_url, json!({"sql": "SELECT count(*) AS n FROM dhis.big WHERE n <= 10"})).await;
        assert_eq!((status, &v["table"]["rows"][0][0]), (200, &json!(10)), "{v}");
        s.stop().await;
    });
}
