//! The charts' libraries (Vega, Vega-Lite, vega-embed), for the web page and
//! the HTML report, come from npm, pinned in `web/package-lock.json`, and are
//! embedded in the binary. When `web/node_modules` is missing this runs
//! `npm ci` once.

use std::path::Path;
use std::process::Command;

fn main() {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web");
    println!("cargo:rerun-if-changed={}", web.join("package-lock.json").display());
    let needed = ["vega/build/vega.min.js", "vega-lite/build/vega-lite.min.js", "vega-embed/build/vega-embed.min.js"];
    if needed.iter().all(|f| web.join("node_modules").join(f).exists()) {
        return;
    }
    let status = Command::new("npm").args(["ci", "--no-audit", "--no-fund", "--omit=dev"]).current_dir(&web).status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("`npm ci` in {} failed ({s}): the web page's libraries come from npm", web.display()),
        Err(e) => panic!(
            "the web page's libraries come from npm, and npm could not be run ({e}): install Node.js and npm \
             (Debian: apt-get install nodejs npm), then build again"
        ),
    }
}
