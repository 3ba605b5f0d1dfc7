//! Teams through HTTP: every route of `/api/openapi.json` tried by a viewer,
//! an editor, an outsider and an anonymous client against the roles table
//! below (a route missing from it fails the test, so a new one cannot be
//! forgotten); share links that open exactly one object without an account
//! and nothing else, until they expire or are revoked; the trusted proxy's
//! header login. Real workers, the fake LLM.

use std::time::Duration;

use quarry_fake_llm::{FakeLlm, Reply, Script};
use quarry_server::auth::Need;
use serde_json::{json, Value};

use crate::common::fake_llm;
use crate::server::{client, demo, events_until_done, get, post, rt, serve, serve_cfg, upload, Running};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Anyone, logged in or not.
    Public,
    /// Any logged-in user (for their own things).
    User,
    /// Admins only (403 for other users).
    Admin,
    /// A member of the route's workspace whose role meets the need (404 for
    /// outsiders, 403 for members whose role falls short).
    Member(Need),
    /// A share link's token only (404 without one).
    Shared,
}

/// The roles table: what each route of the API needs.
fn expected(method: &str, path: &str) -> Option<Expect> {
    use Expect::*;
    use Need::*;
    Some(match (method, path) {
        ("post", "/api/login" | "/api/logout") => Public,
        ("get", "/api/config" | "/api/me" | "/api/tokens" | "/api/workspaces" | "/api/datasets" | "/api/packs") => User,
        ("post", "/api/workspaces" | "/api/datasets") | ("delete", "/api/tokens/{id}") => User,
        ("post", "/api/users" | "/api/users/{name}/tokens") => Admin,
        ("get", "/api/shared" | "/api/shared/export/{format}") => Shared,
        (
            "get",
            "/api/workspaces/{ws}/datasets"
            | "/api/workspaces/{ws}/tables"
            | "/api/workspaces/{ws}/tables/{table}/rows"
            | "/api/workspaces/{ws}/tables/{table}/insights"
            | "/api/workspaces/{ws}/tables/{table}/packs/{pack}"
            | "/api/workspaces/{ws}/analyses"
            | "/api/workspaces/{ws}/definitions"
            | "/api/workspaces/{ws}/connections"
            | "/api/workspaces/{ws}/members"
            | "/api/workspaces/{ws}/conversations"
            | "/api/conversations/{id}"
            | "/api/conversations/{id}/events"
            | "/api/conversations/{id}/questions/{q}/export/{format}"
            | "/api/conversations/{id}/export/{format}",
        ) => Member(Read),
        ("post", "/api/workspaces/{ws}/sql") => Member(Console),
        (
            "post",
            "/api/workspaces/{ws}/datasets"
            | "/api/workspaces/{ws}/tables/{table}/layout"
            | "/api/workspaces/{ws}/tables/{table}/insights/summary"
            | "/api/workspaces/{ws}/tables/{table}/packs/{pack}"
            | "/api/workspaces/{ws}/analyses/{name}/run"
            | "/api/workspaces/{ws}/definitions"
            | "/api/workspaces/{ws}/snapshots"
            | "/api/workspaces/{ws}/conversations"
            | "/api/conversations/{id}/questions"
            | "/api/conversations/{id}/cancel"
            | "/api/conversations/{id}/questions/{q}/analysis",
        )
        | ("get", "/api/conversations/{id}/questions/{q}/analysis")
        | ("delete", "/api/workspaces/{ws}/analyses/{name}" | "/api/workspaces/{ws}/definitions/{kind}/{key}") => {
            Member(Edit)
        }
        (
            "post",
            "/api/workspaces/{ws}/connections" | "/api/workspaces/{ws}/members" | "/api/workspaces/{ws}/settings",
        )
        | ("post" | "get", "/api/workspaces/{ws}/shares")
        | ("get", "/api/workspaces/{ws}/audit")
        | (
            "delete",
            "/api/workspaces/{ws}/connections/{name}"
            | "/api/workspaces/{ws}/members/{name}"
            | "/api/workspaces/{ws}/shares/{share}",
        ) => Member(Own),
        _ => return None,
    })
}

/// What the owner made for the others to try.
struct World {
    ws: String,
    conversation: String,
    table: String,
    analysis: String,
    pack: String,
    share: String,
    token: String,
}

impl World {
    /// `path` with its parameters filled in with things that exist.
    fn fill(&self, path: &str) -> String {
        let name = if path.contains("/analyses/") {
            &self.analysis
        } else if path.contains("/members/") {
            "ed"
        } else if path.contains("/users/") {
            "vera"
        } else {
            "nowhere"
        };
        path.replace("{ws}", &self.ws)
            .replace("{id}", if path.starts_with("/api/tokens") { "0000" } else { &self.conversation })
            .replace("{q}", "1")
            .replace("{table}", &self.table)
            .replace("{pack}", &self.pack)
            .replace("{format}", "csv")
            .replace("{kind}", "term")
            .replace("{key}", "TPR")
            .replace("{share}", &self.share)
            .replace("{name}", name)
    }
}

async fn login(url: &str, name: &str) -> reqwest::Client {
    let (st, t) =
        post(&client(), &format!("{url}/api/login"), json!({"name": name, "password": format!("{name}-password")}))
            .await;
    assert_eq!(st, 200, "{name}: {t}");
    bearer(t["token"].as_str().expect("token"))
}

/// A client sending `name: value` with every request.
fn with_header(name: &'static str, value: &str) -> reqwest::Client {
    quarry_llm::install_crypto();
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(name, value.parse().expect("header"));
    reqwest::Client::builder().default_headers(h).timeout(Duration::from_secs(60)).build().expect("client")
}

fn bearer(token: &str) -> reqwest::Client {
    with_header("authorization", &format!("Bearer {token}"))
}

fn sharing(token: &str) -> reqwest::Client {
    with_header("x-quarry-share", token)
}

/// One call: the status and the error's text.
async fn call(c: &reqwest::Client, method: &str, url: &str) -> (u16, String) {
    let req = match method {
        "get" => c.get(url),
        "post" => c.post(url).json(&json!({})),
        "delete" => c.delete(url),
        m => panic!("no method {m} in this test"),
    };
    let r = req.send().await.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = r.status().as_u16();
    let is_stream = r.headers().get("content-type").is_some_and(|t| t.as_bytes().starts_with(b"text/event-stream"));
    let text = if is_stream { String::new() } else { r.text().await.unwrap_or_default() };
    (status, text)
}

/// The API's routes as (method, path), from its OpenAPI document; the
/// calls that delete things and log out come last.
async fn routes(url: &str) -> Vec<(String, String)> {
    let (_, doc) = get(&client(), &format!("{url}/api/openapi.json")).await;
    let mut out = Vec::new();
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for method in ops.as_object().expect("operations").keys() {
            out.push((method.clone(), path.clone()));
        }
    }
    out.sort_by_key(|(m, p)| (p == "/api/logout", m == "delete", p.clone()));
    assert!(out.len() > 50, "{out:?}");
    out
}

/// Every question: count the states, then answer.
fn script() -> Script {
    let mut sql = Reply::tool("run_sql", json!({"sql": "SELECT count(*) AS n FROM population_2024"}));
    sql.turn = Some(0);
    let mut answer = Reply::tool("final_answer", json!({"answer": "There are {n} states."}));
    answer.turn = Some(1);
    Script { replies: vec![sql, answer], repeat: true }
}

/// The owner's workspace with a table, an answered question, a saved
/// analysis, a definition and a share link; ed its editor, vera its viewer.
async fn build(s: &Running) -> World {
    let files = demo(&s.state.cfg.data.join(".."));
    let alice = login(&s.url, "alice").await;
    let (_, ws) = get(&alice, &format!("{}/api/workspaces", s.url)).await;
    let ws = ws[0]["id"].as_str().expect("ws").to_string();
    assert_eq!(upload(&alice, &s.url, &ws, &files[3]).await.0, 200);
    let (_, conv) = post(&alice, &format!("{}/api/workspaces/{ws}/conversations", s.url), json!({})).await;
    let conversation = conv["id"].as_str().expect("id").to_string();
    let (st, _) = post(
        &alice,
        &format!("{}/api/conversations/{conversation}/questions", s.url),
        json!({"question": "How many states?"}),
    )
    .await;
    assert_eq!(st, 202);
    events_until_done(&alice, &format!("{}/api/conversations/{conversation}/events", s.url)).await;
    let url = format!("{}/api/conversations/{conversation}/questions/1/analysis", s.url);
    let (st, body) = post(&alice, &url, json!({"name": "states"})).await;
    assert_eq!(st, 200, "{body}");
    let def = json!({"kind": "term", "name": "TPR", "meaning": "test positivity rate"});
    assert_eq!(post(&alice, &format!("{}/api/workspaces/{ws}/definitions", s.url), def).await.0, 200);
    for (name, role) in [("ed", "editor"), ("vera", "viewer")] {
        let (st, body) =
            post(&alice, &format!("{}/api/workspaces/{ws}/members", s.url), json!({"name": name, "role": role})).await;
        assert_eq!(st, 200, "{body}");
    }
    let (st, made) = post(
        &alice,
        &format!("{}/api/workspaces/{ws}/shares", s.url),
        json!({"kind": "conversation", "conversation": conversation}),
    )
    .await;
    assert_eq!(st, 200, "{made}");
    let (_, packs) = get(&alice, &format!("{}/api/packs", s.url)).await;
    World {
        ws,
        conversation,
        table: "population_2024".into(),
        analysis: "states".into(),
        pack: packs[0]["name"].as_str().expect("pack").to_string(),
        share: made["share"]["id"].as_str().expect("id").to_string(),
        token: made["token"].as_str().expect("token").to_string(),
    }
}

async fn start(tmp: &std::path::Path, fake: &FakeLlm) -> Running {
    let data = tmp.join("data");
    {
        let store = quarry_store::Store::open(&data.join("quarry.sqlite")).expect("store");
        for name in ["alice", "ed", "vera", "otto"] {
            store.create_user(name, Some(&format!("{name}-password")), false).expect("user");
        }
    }
    serve(&data, Ok(fake_llm(fake, Duration::from_secs(30))), [0, 0, 0, 0]).await
}

/// Whether `status` (with body `text`) is what `expect` says `who` gets.
fn as_expected(expect: Expect, who: &str, status: u16, text: &str) -> bool {
    let refused = matches!(status, 401 | 403 | 404);
    match (expect, who) {
        (Expect::Public, _) => !matches!(status, 401 | 403),
        (_, "anonymous") => status == 401 || (expect == Expect::Shared && status == 404),
        (Expect::User, _) => !matches!(status, 401 | 403),
        (Expect::Admin, _) => status == 403,
        (Expect::Shared, _) => status == 404,
        (Expect::Member(_), "outsider") => status == 404 && text.contains("no such"),
        (Expect::Member(need), role) => {
            let role = quarry_store::Role::parse(role).expect("role");
            if need.allows(role, false) {
                !refused
            } else {
                status == 403
            }
        }
    }
}

#[test]
fn every_route_answers_each_role_as_the_roles_table_says() {
    rt().block_on(async {
        let tmp = tempfile::tempdir().expect("tempdir");
        let fake = FakeLlm::start(script());
        let s = start(tmp.path(), &fake).await;
        let w = build(&s).await;
        let routes = routes(&s.url).await;
        let callers = [
            ("anonymous", client()),
            ("outsider", login(&s.url, "otto").await),
            ("viewer", login(&s.url, "vera").await),
            ("editor", login(&s.url, "ed").await),
        ];
        let mut wrong = Vec::new();
        for (who, c) in &callers {
            for (method, path) in &routes {
                let expect = expected(method, path)
                    .unwrap_or_else(|| panic!("{method} {path} is not in the roles table: say who may call it"));
                let (status, text) = call(c, method, &format!("{}{}", s.url, w.fill(path))).await;
                if !as_expected(expect, who, status, &text) {
                    wrong.push(format!("{who} {method} {path}: {status} {text} (expected {expect:?})"));
                }
            }
        }
        assert!(wrong.is_empty(), "{} wrong:\n{}", wrong.len(), wrong.join("\n"));
        s.stop().await;
    });
}

#[test]
fn viewers_read_editors_change_and_the_owner_decides() {
    rt().block_on(async {
        let tmp = tempfile::tempdir().expect("tempdir");
        let fake = FakeLlm::start(script());
        let s = start(tmp.path(), &fake).await;
        let w = build(&s).await;
        let (alice, vera) = (login(&s.url, "alice").await, login(&s.url, "vera").await);
        let (_, list) = get(&vera, &format!("{}/api/workspaces", s.url)).await;
        assert_eq!((list[0]["id"].as_str(), list[0]["role"].as_str()), (Some(w.ws.as_str()), Some("viewer")), "{list}");
        let (st, c) = get(&vera, &format!("{}/api/conversations/{}", s.url, w.conversation)).await;
        assert_eq!(st, 200);
        assert!(c["events"].as_array().is_some_and(|e| e.iter().any(|e| e["event"]["type"] == "answer")));
        let ask = format!("{}/api/conversations/{}/questions", s.url, w.conversation);
        let (st, e) = post(&vera, &ask, json!({"question": "How many states?"})).await;
        assert_eq!(st, 403);
        assert!(e["error"].as_str().unwrap_or_default().contains("ask its owner to make you an editor"), "{e}");
        // The SQL console opens to viewers when the owner says so.
        let sql = format!("{}/api/workspaces/{}/sql", s.url, w.ws);
        let q = json!({"sql": "SELECT count(*) AS n FROM population_2024"});
        assert_eq!(post(&vera, &sql, q.clone()).await.0, 403);
        let settings = format!("{}/api/workspaces/{}/settings", s.url, w.ws);
        assert_eq!(post(&vera, &settings, json!({"viewers_sql": true})).await.0, 403);
        assert_eq!(post(&alice, &settings, json!({"viewers_sql": true})).await.0, 200);
        let (st, r) = post(&vera, &sql, q).await;
        assert_eq!((st, &r["table"]["rows"][0][0]), (200, &json!(4)), "{r}");
        // Promoted, vera asks; removed, the workspace is gone for her.
        let members = format!("{}/api/workspaces/{}/members", s.url, w.ws);
        assert_eq!(post(&alice, &members, json!({"name": "vera", "role": "editor"})).await.0, 200);
        assert_eq!(post(&vera, &ask, json!({"question": "How many states?"})).await.0, 202);
        let (st, e) = post(&alice, &members, json!({"name": "vera", "role": "owner"})).await;
        assert_eq!(st, 400, "{e}");
        assert_eq!(post(&alice, &members, json!({"name": "nobody", "role": "viewer"})).await.0, 400);
        assert_eq!(alice.delete(format!("{members}/vera")).send().await.expect("delete").status(), 200);
        assert_eq!(get(&vera, &format!("{}/api/conversations/{}", s.url, w.conversation)).await.0, 404);
        let (_, m) = get(&alice, &members).await;
        let names: Vec<(&str, &str)> = m["members"]
            .as_array()
            .expect("members")
            .iter()
            .map(|m| (m["name"].as_str().unwrap(), m["role"].as_str().unwrap()))
            .collect();
        assert_eq!(names, [("alice", "owner"), ("ed", "editor")]);
        // Each change is on the audit trail.
        let (_, log) = get(&alice, &format!("{}/api/workspaces/{}/audit", s.url, w.ws)).await;
        let got: Vec<(&str, &str, &str)> = log
            .as_array()
            .expect("log")
            .iter()
            .map(|e| (e["user"].as_str().unwrap(), e["action"].as_str().unwrap(), e["target"].as_str().unwrap()))
            .filter(|(_, a, _)| ["member", "remove_member", "settings", "share"].contains(a))
            .collect();
        assert_eq!(
            got,
            [
                ("alice", "member", "ed: editor"),
                ("alice", "member", "vera: viewer"),
                ("alice", "share", format!("conversation {} (link {})", w.conversation, w.share).as_str()),
                ("alice", "settings", "viewers_sql: true"),
                ("alice", "member", "vera: editor"),
                ("alice", "remove_member", "vera"),
            ],
            "{log}"
        );
        s.stop().await;
    });
}

#[test]
fn a_share_link_opens_its_object_without_an_account_and_nothing_else() {
    rt().block_on(async {
        let tmp = tempfile::tempdir().expect("tempdir");
        let fake = FakeLlm::start(script());
        let s = start(tmp.path(), &fake).await;
        let w = build(&s).await;
        let alice = login(&s.url, "alice").await;
        let link = sharing(&w.token);
        let (st, v) = get(&link, &format!("{}/api/shared", s.url)).await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["kind"], "conversation");
        assert_eq!(v["answers"][0]["answer"], "There are 4 states.");
        assert!(v["answers"][0]["code"].as_str().unwrap_or_default().contains("count(*)"), "code shown by default");
        let csv = link.get(format!("{}/api/shared/export/csv", s.url)).send().await.expect("csv");
        assert_eq!(csv.text().await.expect("csv"), "n\n4\n");
        // With the token as a header, and as a bearer token, no other route opens.
        let bearer = bearer(&w.token);
        for (method, path) in routes(&s.url).await {
            let expect = expected(&method, &path).expect("in the roles table");
            if matches!(expect, Expect::Public | Expect::Shared) {
                continue;
            }
            for (who, c) in [("header", &link), ("bearer", &bearer)] {
                let (status, text) = call(c, &method, &format!("{}{}", s.url, w.fill(&path))).await;
                assert_eq!(status, 401, "the link's token ({who}) opened {method} {path}: {text}");
            }
        }
        // Not in a URL: the page keeps it in the fragment, which is never sent.
        let (st, _) = get(&client(), &format!("{}/api/shared?token={}", s.url, w.token)).await;
        assert_eq!(st, 404);
        // An answer without its code: no code, no steps, no notebook.
        let shares = format!("{}/api/workspaces/{}/shares", s.url, w.ws);
        let (_, a) = post(
            &alice,
            &shares,
            json!({"kind": "answer", "conversation": w.conversation, "question": 1, "show_code": false}),
        )
        .await;
        let hidden = sharing(a["token"].as_str().expect("token"));
        let (_, v) = get(&hidden, &format!("{}/api/shared", s.url)).await;
        assert_eq!((v["kind"].as_str(), v["answers"].as_array().map(Vec::len)), (Some("answer"), Some(1)), "{v}");
        assert_eq!((&v["answers"][0]["code"], &v["answers"][0]["steps"]), (&json!(""), &json!([])));
        assert!(!v.to_string().contains("count(*)"), "{v}");
        assert!(!v["export_formats"].as_array().expect("formats").iter().any(|f| f["format"] == "ipynb"));
        assert_eq!(hidden.get(format!("{}/api/shared/export/ipynb", s.url)).send().await.expect("nb").status(), 403);
        let report = hidden.get(format!("{}/api/shared/export/html", s.url)).send().await.expect("html");
        let report = report.text().await.expect("text");
        assert!(report.contains("There are 4 states.") && !report.contains("count(*)"));
        // An analysis's latest result.
        let (st, a) = post(&alice, &shares, json!({"kind": "analysis", "analysis": "states"})).await;
        assert_eq!(st, 200, "{a}");
        let (_, v) = get(&sharing(a["token"].as_str().unwrap()), &format!("{}/api/shared", s.url)).await;
        assert_eq!(v["answers"][0]["table"]["rows"][0][0], 4, "{v}");
        assert!(v["title"].as_str().unwrap().starts_with("states"), "{v}");
        // Refused: what is not there, what is not a kind, what another workspace holds.
        for bad in [
            json!({"kind": "answer", "conversation": w.conversation, "question": 9}),
            json!({"kind": "analysis", "analysis": "nope"}),
            json!({"kind": "table", "conversation": w.conversation}),
            json!({"kind": "conversation", "conversation": w.conversation, "expires_days": -1}),
        ] {
            let (st, e) = post(&alice, &shares, bad.clone()).await;
            assert!(st == 400 || st == 404, "{bad}: {st} {e}");
        }
        // Expired and revoked links open nothing.
        let (_, short) = post(
            &alice,
            &shares,
            json!({"kind": "conversation", "conversation": w.conversation, "expires_days": 0.00002}),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(get(&sharing(short["token"].as_str().unwrap()), &format!("{}/api/shared", s.url)).await.0, 404);
        let r = alice.delete(format!("{shares}/{}", w.share)).send().await.expect("revoke");
        assert_eq!(r.status(), 200);
        assert_eq!(get(&link, &format!("{}/api/shared", s.url)).await.0, 404);
        assert_eq!(link.get(format!("{}/api/shared/export/csv", s.url)).send().await.expect("csv").status(), 404);
        let (_, list) = get(&alice, &shares).await;
        let states: Vec<(bool, bool)> = list
            .as_array()
            .expect("list")
            .iter()
            .map(|s| (s["open"].as_bool().unwrap(), s["revoked"].as_bool().unwrap()))
            .collect();
        assert_eq!(states.iter().filter(|(open, _)| *open).count(), 2, "{list}");
        assert_eq!(states.iter().filter(|(_, revoked)| *revoked).count(), 1, "{list}");
        s.stop().await;
    });
}

#[test]
fn a_trusted_proxy_names_the_user_and_no_one_else_can() {
    rt().block_on(async {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("data");
        let me = |c: reqwest::Client, url: String| async move {
            let r = c.get(format!("{url}/api/me")).header("X-Forwarded-User", "nadia").send().await.expect("me");
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
        };
        // The test's requests come from 127.0.0.1: trusted here…
        let s = serve_cfg(&data, Err("none".into()), [0, 0, 0, 0], |c| {
            c.trusted_proxies = vec![[127, 0, 0, 1].into()];
        })
        .await;
        let (st, u) = me(client(), s.url.clone()).await;
        assert_eq!((st, u["name"].as_str(), u["admin"].as_bool()), (200, Some("nadia"), Some(false)), "{u}");
        let (st, list) = get(&client(), &format!("{}/api/workspaces", s.url)).await;
        assert_eq!(st, 401, "without the header, a login is needed: {list}");
        s.stop().await;
        // …and not when the trusted proxy is another machine.
        let s = serve_cfg(&data, Err("none".into()), [0, 0, 0, 0], |c| {
            c.trusted_proxies = vec![[10, 9, 8, 7].into()];
        })
        .await;
        assert_eq!(me(client(), s.url.clone()).await.0, 401);
        s.stop().await;
    });
}
