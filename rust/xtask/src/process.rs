//! Running child processes: checked, teed to the terminal, or bounded in time with their output
//! captured.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Runs a command with inherited output; an error if it cannot start or exits non-zero.
pub(crate) fn run_checked(command: &mut Command) -> Result<(), String> {
    let status = command.status().map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if !status.success() {
        return Err(format!("{command:?} failed with {status}"));
    }
    Ok(())
}

/// Runs a command, printing its output as it comes and returning it too.
pub(crate) fn run_tee(command: &mut Command) -> Result<(ExitStatus, String), String> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    let output = Arc::new(Mutex::new(String::new()));
    let readers = spawn_readers(&mut child, output.clone(), Echo::All);
    let status = child.wait().map_err(|e| format!("waiting for {command:?}: {e}"))?;
    for reader in readers {
        let _ = reader.join();
    }
    let text = output.lock().map(|s| s.clone()).unwrap_or_default();
    Ok((status, text))
}

/// How a bounded run ended.
pub(crate) struct Bounded {
    /// The exit status, or None when the time ran out and the process group was killed.
    pub(crate) status: Option<ExitStatus>,
    /// Everything it printed, stdout and stderr interleaved by line.
    pub(crate) output: String,
}

/// What a bounded run shows on the terminal while it runs.
#[derive(Clone, Debug)]
pub(crate) enum Echo {
    /// Every line as it comes.
    All,
    /// Nothing (the output is still captured).
    Quiet,
    /// Only lines starting with `| `, shown as `<prefix> <rest of line>`.
    Marked(String),
}

/// Runs a command in its own process group for at most `limit`; the whole group (helper
/// processes included) is killed when it ends or when the time runs out.
pub(crate) fn run_bounded(command: &mut Command, limit: Duration, echo: Echo) -> Result<Bounded, String> {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    let output = Arc::new(Mutex::new(String::new()));
    let readers = spawn_readers(&mut child, output.clone(), echo);
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() < limit => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) | Err(_) => break None,
        }
    };
    kill_group(child.id());
    let _ = child.kill();
    let _ = child.wait();
    for reader in readers {
        let _ = reader.join();
    }
    let output = output.lock().map(|s| s.clone()).unwrap_or_default();
    Ok(Bounded { status, output })
}

/// Kills every process of the group led by `pid` (helpers a test left behind).
pub(crate) fn kill_group(pid: u32) {
    #[cfg(unix)]
    {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    #[cfg(not(unix))]
    let _ = pid;
}

fn spawn_readers(
    child: &mut std::process::Child,
    output: Arc<Mutex<String>>,
    echo: Echo,
) -> Vec<std::thread::JoinHandle<()>> {
    let mut readers = Vec::new();
    let sources: Vec<Box<dyn Read + Send>> = [
        child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
        child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .collect();
    for source in sources {
        let output = output.clone();
        let echo = echo.clone();
        readers.push(std::thread::spawn(move || {
            let mut reader = BufReader::new(source);
            let mut line = Vec::new();
            while reader.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
                let text = String::from_utf8_lossy(&line).into_owned();
                match &echo {
                    Echo::All => print!("{text}"),
                    Echo::Marked(prefix) => {
                        if let Some(rest) = text.strip_prefix("| ") {
                            print!("{prefix} {rest}");
                        }
                    }
                    Echo::Quiet => {}
                }
                if let Ok(mut out) = output.lock() {
                    out.push_str(&text);
                    if !text.ends_with('\n') {
                        out.push('\n');
                    }
                }
                line.clear();
            }
        }));
    }
    readers
}

/// Sums the `test result: ... N passed; M failed` lines of `cargo test` output.
pub(crate) fn count_cargo_results(output: &str) -> (usize, usize) {
    let mut passed = 0;
    let mut failed = 0;
    for line in output.lines().filter(|l| l.trim_start().starts_with("test result:")) {
        for part in line.split(';') {
            let words: Vec<&str> = part.split_whitespace().collect();
            for pair in words.windows(2) {
                match (pair[0].parse::<usize>(), pair[1]) {
                    (Ok(n), "passed") => passed += n,
                    (Ok(n), "failed") => failed += n,
                    _ => {}
                }
            }
        }
    }
    (passed, failed)
}

#[cfg(test)]
mod tests {
    use super::count_cargo_results;

    #[test]
    fn cargo_summaries_are_added_up() {
        let output = "test result: ok. 3 passed; 0 failed; 0 ignored\n\
                      test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured\n\
                      running 3 tests\n";
        assert_eq!(count_cargo_results(output), (5, 1));
    }
}
