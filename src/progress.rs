//! Progress of a long `run --once` or `plan` on a terminal (indicatif on stderr): what is being
//! read, then how many stagings are done. Hidden when stderr is not a terminal, when `NO_COLOR`
//! asks for plain output, and for the daemon.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress line, or nothing.
#[derive(Clone)]
pub struct Progress(ProgressBar);

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress")
    }
}

impl Default for Progress {
    fn default() -> Progress {
        Progress::hidden()
    }
}

impl Progress {
    /// Drawn on stderr when it is a terminal and plain output is not asked for.
    pub fn on_terminal() -> Progress {
        if !crate::text::styled(&std::io::stderr()) {
            return Progress::hidden();
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {pos}/{len}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress(bar)
    }

    /// Nothing drawn.
    pub fn hidden() -> Progress {
        Progress(ProgressBar::hidden())
    }

    /// A phase without a count: `reading sources`.
    pub fn phase(&self, what: &'static str) {
        self.0.set_length(0);
        self.0.set_message(what);
    }

    /// `n` stagings to converge.
    pub fn stagings(&self, n: usize) {
        self.0.set_position(0);
        self.0.set_length(n as u64);
        self.0.set_message("stagings converged");
    }

    /// One more done.
    pub fn done_one(&self) {
        self.0.inc(1);
    }

    /// Remove the line.
    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}
