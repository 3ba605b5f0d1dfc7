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
