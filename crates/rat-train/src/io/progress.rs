//! The progress line of a training run: a bar on a terminal, plain lines otherwise.

use std::io::IsTerminal;

/// A one-line progress bar on a terminal; silent otherwise (the caller prints plain lines).
pub struct Progress {
    total: usize,
    tty: bool,
    drawn: bool,
}

impl Progress {
    /// A progress line for `total` iterations.
    pub fn new(total: usize) -> Self {
        Self {
            total,
            tty: std::io::stderr().is_terminal(),
            drawn: false,
        }
    }

    /// Shows iteration `it` (from 0): redrawn on a terminal, a plain line every `every`
    /// iterations and at the last one otherwise.
    pub fn update(&mut self, it: usize, fps: f64, ret: f64, every: usize) {
        let done = it + 1;
        if self.tty {
            let width = 30;
            let filled = (done * width / self.total.max(1)).min(width);
            eprint!(
                "\r[{}{}] {done}/{} it | {fps:.0} steps/s | return {ret:.1}   ",
                "#".repeat(filled),
                ".".repeat(width - filled),
                self.total
            );
            self.drawn = true;
        } else if done.is_multiple_of(every.max(1)) || done == self.total {
            eprintln!(
                "it {done}/{} | {fps:.0} steps/s | return {ret:.1}",
                self.total
            );
        }
    }

    /// Erases the line, before other output.
    pub fn clear(&mut self) {
        if self.drawn {
            eprint!("\r{}\r", " ".repeat(80));
            self.drawn = false;
        }
    }
}
