//! The HTML report in a real browser: headless Chromium (Debian's
//! `chromium`, which `.ci/run` installs when missing) loads a report of the
//! demo dataset's alerts with its labels. The test checks that the page
//! needs nothing from the network, that every plot is rendered with a real
//! size and drawn content (measured by the browser's layout, through a probe
//! script added to a copy of the page), that the page logs nothing to the
//! console, and saves a screenshot, `target/report-browser/report.png`, for a
//! person to look at.
//!
//! Without Chromium the test is skipped with a message, except under CI
//! (`CI` set), where it must run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The probe: after load, each plot's rendered size, its labels, and its
/// data marks (shapes in a colour other than the black, white and grey of
/// axes, background and reference lines) with the area they span, as JSON
/// in `<pre id="render-probe">`.
const PROBE: &str = r#"<script>
window.addEventListener('load', function () {
  var plain = ['', 'NONE', '#000000', '#FFFFFF', '#BBBBBB'];
  var out = [];
  document.querySelectorAll('.plot').forEach(function (div) {
    var svg = div.querySelector('svg');
    var r = svg ? svg.getBoundingClientRect() : { width: 0, height: 0 };
    var marks = svg ? Array.prototype.filter.call(svg.querySelectorAll('polyline, path, rect, circle, polygon'), function (el) {
      var stroke = (el.getAttribute('stroke') || '').toUpperCase();
      var fill = (el.getAttribute('fill') || '').toUpperCase();
      return plain.indexOf(stroke) < 0 || plain.indexOf(fill) < 0;
    }) : [];
    var x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    marks.forEach(function (el) {
      var b = el.getBBox();
      x0 = Math.min(x0, b.x); y0 = Math.min(y0, b.y);
      x1 = Math.max(x1, b.x + b.width); y1 = Math.max(y1, b.y + b.height);
    });
    out.push({
      id: div.id,
      width: r.width,
      height: r.height,
      texts: svg ? svg.querySelectorAll('text').length : 0,
      marks: marks.length,
      marked_area: marks.length ? (x1 - x0) * (y1 - y0) : 0
    });
  });
  var pre = document.createElement('pre');
  pre.id = 'render-probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"#;

fn changeling(args: &[&str]) -> Output {
    let o = Command::new(env!("CARGO_BIN_EXE_changeling")).args(args).output().expect("the binary runs");
    assert!(o.status.success(), "changeling {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    o
}

/// Chromium's path: `$CHROMIUM`, else the first of Debian's and others'
/// names found on `PATH`.
fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    for name in ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"] {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// Runs headless Chromium on `page` with `extra` arguments, killing it
/// after a minute.
fn browse(browser: &Path, profile: &Path, page: &Path, extra: &[&str]) -> Output {
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(&url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    // Read both pipes while waiting: a page's DOM is larger than a pipe.
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let t0 = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("chromium did not finish within a minute on {url}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output { status, stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() }
}

/// Console messages in Chromium's log (`INFO:CONSOLE(...)` lines).
fn console(o: &Output) -> Vec<String> {
    String::from_utf8_lossy(&o.stderr).lines().filter(|l| l.contains(":CONSOLE")).map(str::to_string).collect()
}

#[test]
fn the_report_renders_in_headless_chromium() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is not installed, and under CI this test must run: .ci/run installs Debian's chromium"
        );
        eprintln!("SKIPPED the_report_renders_in_headless_chromium: no chromium on PATH (apt-get install chromium)");
        return;
    };
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("report-browser");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let alerts = dir.join("alerts.jsonl");
    let page = dir.join("report.html");
    changeling(&["score", "--data", "datasets/demo", "--quiet", "-o", alerts.to_str().unwrap()]);
    changeling(&[
        "report",
        "--alerts",
        alerts.to_str().unwrap(),
        "--data",
        "datasets/demo",
        "-o",
        page.to_str().unwrap(),
    ]);
    let html = std::fs::read_to_string(&page).unwrap();

    // Self-contained: nothing to fetch.
    for attr in ["src=", "href=", "url("] {
        assert!(!html.contains(attr), "the page refers to something outside it ({attr})");
    }
    assert!(!html.contains("<script"), "the report has no scripts");

    let profile = tempfile::tempdir().unwrap();
    // The page itself: no console messages, and a screenshot.
    let shot = dir.join("report.png");
    let o = browse(
        &browser,
        profile.path(),
        &page,
        &["--window-size=1280,4000", &format!("--screenshot={}", shot.display())],
    );
    assert!(o.status.success(), "chromium failed: {}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(console(&o), Vec::<String>::new(), "console messages");
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 20_000, "screenshot of {} bytes", png.len());

    // A copy with the probe: every plot laid out at a real size, with content.
    let probed = dir.join("report-probe.html");
    std::fs::write(&probed, html.replace("</body>", &format!("{PROBE}</body>"))).unwrap();
    let o = browse(&browser, profile.path(), &probed, &["--window-size=1280,4000", "--dump-dom"]);
    assert!(o.status.success(), "chromium failed: {}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(console(&o), Vec::<String>::new(), "console messages with the probe");
    let dom = String::from_utf8_lossy(&o.stdout);
    let start = dom.find("<pre id=\"render-probe\">").expect("the probe ran") + "<pre id=\"render-probe\">".len();
    let end = start + dom[start..].find("</pre>").unwrap();
    let json = dom[start..end].replace("&quot;", "\"").replace("&amp;", "&");
    let plots: Vec<serde_json::Value> = serde_json::from_str(&json).expect("the probe's JSON");
    let ids: Vec<&str> = plots.iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["score-histogram", "incidents-over-time", "roc-curve", "pr-curve"]);
    for p in &plots {
        let f = |k: &str| p[k].as_f64().unwrap();
        assert!(f("width") >= 300.0 && f("height") >= 250.0, "plot rendered too small: {p}");
        assert!(f("texts") >= 5.0, "plot without labels: {p}");
        assert!(f("marks") >= 1.0 && f("marked_area") > 20_000.0, "plot without data drawn: {p}");
    }
}
