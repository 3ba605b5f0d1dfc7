//! PDF reports through the real binary and a real Chromium: the printed
//! report holds the question, the answer's numbers and the table's values
//! (hostile ones as plain text), numbered pages and a chart drawn as
//! vectors; `pdftoppm` renders it.

use std::process::Command;

use crate::common::{ok, quarry};
use quarry_fake_llm::{FakeLlm, Reply, Script};
use serde_json::json;

fn tools_here() -> bool {
    let have = quarry_sandbox::pdf::chromium().is_some()
        && Command::new("pdftotext").arg("-v").output().is_ok_and(|o| o.status.success() || !o.stderr.is_empty());
    if !have {
        assert!(std::env::var_os("QUARRY_REQUIRE_SERVICES").is_none(), "Chromium and poppler-utils are required");
        eprintln!("skipped: no Chromium or pdftotext (Debian: apt-get install chromium poppler-utils)");
    }
    have
}

#[test]
fn an_answer_exports_as_a_pdf_with_its_numbers_hostile_text_as_text_and_a_vector_chart() {
    if !tools_here() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let csv = "facility,positives\n<script>alert(1)</script>,51\n\"=HYPERLINK(\"\"http://evil.example\"\")\",7\nPHC Dala 1,1234\n";
    std::fs::write(dir.join("hostile.csv"), csv).unwrap();
    ok(&quarry(dir, &["load", "hostile.csv"]));
    let sql = "SELECT facility, positives FROM hostile ORDER BY positives DESC";
    let q = "Which facilities reported the most positives?";
    let template = "{row 1 facility} reported the most: {row 1 positives}.";
    let chart = json!({"type": "bar", "x": "facility", "y": "positives"});
    let fake = FakeLlm::start(Script::new(vec![
        Reply::tool("run_sql", json!({"sql": sql})),
        Reply::tool("final_answer", json!({"answer": template, "chart": chart})),
    ]));
    let url = fake.openai_url();
    let args =
        ["ask", q, "--json", "--llm-base-url", &url, "--llm-model", "m", "--no-python", "--export", "report.pdf"];
    let out = quarry(dir, &args);
    let answer: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    assert!(!answer["chart"].is_null(), "a chart to print: {answer}");

    let pdf = dir.join("report.pdf");
    assert!(std::fs::read(&pdf).unwrap().starts_with(b"%PDF"));
    let text = Command::new("pdftotext").args(["-layout"]).arg(&pdf).arg("-").output().unwrap();
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    for want in [
        q,
        "PHC Dala 1 reported the most: 1,234.",
        "<script>alert(1)</script>",
        "=HYPERLINK(\"http://evil.example\")",
        "Page 1 of",
    ] {
        assert!(text.contains(want), "{want:?} not in the PDF's text:\n{text}");
    }
    // The chart is vectors: its axis title is text in the PDF, not pixels.
    assert!(text.matches("positives").count() >= 3, "{text}");
    let shot = Command::new("pdftoppm")
        .args(["-png", "-r", "40", "-f", "1", "-l", "1"])
        .arg(&pdf)
        .arg(dir.join("page"))
        .output()
        .unwrap();
    assert!(shot.status.success(), "{}", String::from_utf8_lossy(&shot.stderr));
    let png = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().starts_with("page"));
    assert!(png.is_some_and(|p| p.metadata().unwrap().len() > 1000));
    if let Some(keep) = std::env::var_os("QUARRY_KEEP_PDF") {
        std::fs::copy(&pdf, keep).unwrap();
    }
}

/// A long table runs over several pages: each page repeats the table's
/// header and carries its number, and the last row is printed.
#[test]
fn a_long_table_is_paginated_with_its_header_on_every_page() {
    if !tools_here() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut csv = String::from("facility_name,monthly_positives\n");
    for i in 1..=240 {
        csv.push_str(&format!("Facility {i:03},{}\n", i * 7));
    }
    std::fs::write(dir.join("long.csv"), csv).unwrap();
    ok(&quarry(dir, &["load", "long.csv"]));
    let fake = FakeLlm::start(Script::new(vec![
        Reply::tool("run_sql", json!({"sql": "SELECT facility_name, monthly_positives FROM long ORDER BY 1"})),
        Reply::tool("final_answer", json!({"answer": "Every facility's positives."})),
    ]));
    let url = fake.openai_url();
    let args = [
        "ask",
        "Positives by facility",
        "--llm-base-url",
        &url,
        "--llm-model",
        "m",
        "--no-python",
        "--export",
        "long.pdf",
    ];
    ok(&quarry(dir, &args));
    let pdf = dir.join("long.pdf");
    let info = Command::new("pdfinfo").arg(&pdf).output().unwrap();
    let info = String::from_utf8_lossy(&info.stdout).to_string();
    let pages: usize = info
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no page count: {info}"));
    assert!(pages >= 3, "240 rows on {pages} page(s)");
    let page = |n: usize| {
        let o = Command::new("pdftotext")
            .args(["-layout", "-f", &n.to_string(), "-l", &n.to_string()])
            .arg(&pdf)
            .arg("-")
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    // Every page after the first that holds rows also holds the header.
    let mut with_rows = 0;
    for n in 2..=pages {
        let text = page(n);
        assert!(text.contains(&format!("Page {n} of {pages}")), "page {n}: {text}");
        if text.contains("Facility ") {
            with_rows += 1;
            assert!(
                text.contains("facility_name") && text.contains("monthly_positives"),
                "page {n} lacks the header:\n{text}"
            );
        }
    }
    assert!(with_rows >= 2, "rows on {with_rows} later page(s)");
    let all = Command::new("pdftotext").arg(&pdf).arg("-").output().unwrap();
    assert!(String::from_utf8_lossy(&all.stdout).contains("Facility 240"), "the last row is printed");
}
