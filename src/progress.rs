//! Progress of long work (demo simulation and load, index build, `eval`, `restore`, `import`):
//! one small reporter for the service and the command line. The core and the store know
//! nothing of it: they take a plain callback `&mut dyn FnMut(done, total)` and call it every
//! thousand records or so, with `done == total` at the end; the caller feeds a [`Progress`].
//!
//! On a terminal (standard error is one) a [`Progress`] drives an `indicatif` bar; otherwise
//! (a service under systemd, a log file, a test) it writes a line at most every
//! [`LOG_INTERVAL`] and one at the end, through `tracing` (info), e.g.
//! `demo load: 812,000 of 5,600,000 records (14%), 31 s, ~3 min left`.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// How often a [`Progress`] without a terminal writes a line, at most (plus one at the end).
pub const LOG_INTERVAL: Duration = Duration::from_secs(5);

/// Where the progress goes.
enum Output {
    /// An `indicatif` bar on standard error.
    Bar(indicatif::ProgressBar),
    /// Lines, at most one per `interval`, given to `sink`.
    Lines { interval: Duration, last: Instant, sink: Box<dyn FnMut(&str) + Send> },
}

/// The progress of one step (`step` names it in every line, e.g. `demo load`), counted in
/// `unit`s (`records` unless [`Progress::unit`] says otherwise) out of `total`.
pub struct Progress {
    step: String,
    unit: &'static str,
    done: u64,
    total: u64,
    started: Instant,
    out: Output,
    finished: bool,
}

impl Progress {
    /// A bar when standard error is a terminal, else lines through `tracing` every
    /// [`LOG_INTERVAL`] at most.
    pub fn new(step: &str, total: u64) -> Progress {
        if std::io::stderr().is_terminal() {
            let style = indicatif::ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} ({elapsed}, ~{eta} left)")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> ");
            let bar = indicatif::ProgressBar::new(total).with_style(style).with_message(step.to_string());
            Progress::with_output(step, total, Output::Bar(bar))
        } else {
            Progress::lines(step, total, LOG_INTERVAL, |line| tracing::info!("{line}"))
        }
    }

    /// Lines only, at most one per `interval` (`Duration::ZERO`: one per update) and one at
    /// [`Progress::finish`], each given to `sink` (tests, or a log of one's own).
    pub fn lines(step: &str, total: u64, interval: Duration, sink: impl FnMut(&str) + Send + 'static) -> Progress {
        Progress::with_output(step, total, Output::Lines { interval, last: Instant::now(), sink: Box::new(sink) })
    }

    fn with_output(step: &str, total: u64, out: Output) -> Progress {
        Progress { step: step.to_string(), unit: "records", done: 0, total, started: Instant::now(), out, finished: false }
    }

    /// The unit counted, in the lines (e.g. `months`, `bytes`; empty: none named).
    pub fn unit(mut self, unit: &'static str) -> Progress {
        self.unit = unit;
        self
    }

    /// `n` more done.
    pub fn inc(&mut self, n: u64) {
        self.set(self.done.saturating_add(n));
    }

    /// `done` so far.
    pub fn set(&mut self, done: u64) {
        self.done = done;
        match &mut self.out {
            Output::Bar(bar) => bar.set_position(done),
            Output::Lines { interval, last, sink } => {
                if last.elapsed() >= *interval {
                    *last = Instant::now();
                    sink(&line(&self.step, self.unit, done, self.total, self.started.elapsed(), false));
                }
            }
        }
    }

    /// `done` so far out of a `total` that may have changed (a store callback's two figures).
    pub fn update(&mut self, done: u64, total: u64) {
        if total != self.total {
            self.total = total;
            if let Output::Bar(bar) = &self.out {
                bar.set_length(total);
            }
        }
        self.set(done);
    }

    /// The step is over: the bar stays complete, or the last line is written (always, however
    /// recent the one before). Once only; a `Progress` dropped without it writes nothing more.
    pub fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        match &mut self.out {
            Output::Bar(bar) => bar.finish(),
            Output::Lines { sink, .. } => sink(&line(&self.step, self.unit, self.done, self.total, self.started.elapsed(), true)),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Output::Bar(bar) = &self.out
            && !self.finished
        {
            bar.abandon();
        }
    }
}

/// Feeds callbacks of the form `(step, done, total)` ([`crate::import::run`],
/// [`crate::service::restore`]): one [`Progress`] per step (its unit unnamed: steps count
/// records or bytes), the previous one finished when the step changes.
#[derive(Default)]
pub struct Steps {
    current: Option<Progress>,
}

impl Steps {
    /// `done` of `total` in `step`.
    pub fn update(&mut self, step: &str, done: u64, total: u64) {
        if self.current.as_ref().is_none_or(|p| p.step != step) {
            self.finish();
            self.current = Some(Progress::new(step, total).unit(""));
        }
        if let Some(p) = &mut self.current {
            p.update(done, total);
        }
    }

    /// Finishes the step under way, if any.
    pub fn finish(&mut self) {
        if let Some(mut p) = self.current.take() {
            p.finish();
        }
    }
}

/// One progress line: `demo load: 812,000 of 5,600,000 records (14%), 31 s, ~3 min left`, or
/// at the end `demo load: 5,600,000 of 5,600,000 records (100%), done in 2 min 5 s`.
fn line(step: &str, unit: &str, done: u64, total: u64, elapsed: Duration, end: bool) -> String {
    let pct = if total == 0 { 100 } else { (u128::from(done) * 100 / u128::from(total)) as u64 };
    let unit = if unit.is_empty() { String::new() } else { format!(" {unit}") };
    let head = format!("{step}: {} of {}{unit} ({pct}%)", grouped(done), grouped(total));
    if end {
        return format!("{head}, done in {}", duration(elapsed));
    }
    if done == 0 || done >= total {
        return format!("{head}, {}", duration(elapsed));
    }
    let left = elapsed.mul_f64((total - done) as f64 / done as f64);
    format!("{head}, {}, ~{} left", duration(elapsed), duration(left))
}

/// `5600000` → `5,600,000`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `31 s`, `3 min`, `2 min 5 s`, `1 h 4 min`.
fn duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 if s.is_multiple_of(60) => format!("{} min", s / 60),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    fn capture(interval: Duration, total: u64) -> (Progress, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        (Progress::lines("demo load", total, interval, move |l| sink.lock().unwrap().push(l.to_string())), lines)
    }

    #[test]
    fn lines_at_most_once_per_interval_and_always_at_the_end() {
        // An interval no test outlives: no line before the end, however many updates.
        let (mut p, lines) = capture(Duration::from_secs(3600), 5_600_000);
        for done in (0..=5_600_000).step_by(1000) {
            p.set(done);
        }
        assert!(lines.lock().unwrap().is_empty());
        p.finish();
        p.finish();
        let got = lines.lock().unwrap().clone();
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].starts_with("demo load: 5,600,000 of 5,600,000 records (100%), done in "), "{}", got[0]);

        // An interval of zero: one line per update, then the end.
        let (mut p, lines) = capture(Duration::ZERO, 2000);
        p.inc(500);
        p.inc(500);
        p.update(2000, 2000);
        p.finish();
        let got = lines.lock().unwrap().clone();
        assert_eq!(got.len(), 4, "{got:?}");
        assert!(got[0].starts_with("demo load: 500 of 2,000 records (25%), 0 s, ~0 s left"), "{}", got[0]);
        assert!(got[1].starts_with("demo load: 1,000 of 2,000 records (50%), "), "{}", got[1]);
        assert!(got[2].starts_with("demo load: 2,000 of 2,000 records (100%), 0 s"), "{}", got[2]);
        assert!(got[3].starts_with("demo load: 2,000 of 2,000 records (100%), done in 0 s"), "{}", got[3]);
    }

    #[test]
    fn a_dropped_progress_writes_no_end_line() {
        let (mut p, lines) = capture(Duration::from_secs(3600), 10);
        p.set(3);
        drop(p);
        assert!(lines.lock().unwrap().is_empty());
    }

    #[test]
    fn line_shapes() {
        assert_eq!(
            line("demo load", "records", 812_000, 5_600_000, Duration::from_secs(31), false),
            "demo load: 812,000 of 5,600,000 records (14%), 31 s, ~3 min 2 s left"
        );
        assert_eq!(line("index", "records", 0, 0, Duration::from_secs(3725), true), "index: 0 of 0 records (100%), done in 1 h 2 min");
        assert_eq!(line("simulation", "months", 0, 90, Duration::from_secs(120), false), "simulation: 0 of 90 months (0%), 2 min");
        assert_eq!(line("verifying", "", 5, 10, Duration::from_secs(1), false), "verifying: 5 of 10 (50%), 1 s, ~1 s left");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(12_345_678), "12,345,678");
    }
}
