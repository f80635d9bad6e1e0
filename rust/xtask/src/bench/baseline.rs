//! `cargo xtask bench --baseline REV`: what a change costs. The parts that use our extension run
//! with the extension built from git revision REV ("before", in a worktree under
//! `<target>/bench-baseline/`, with that revision's `godot-project/`) and with the working tree's
//! ("after"), interleaved, and `before-after.md` compares them with the round-to-round spread of
//! each build as the measure of noise.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::raw::{Figures, RawBench, Server, Value, METRICS};
use super::report::{command_output, format_value, machine};
use super::rpc::{self, Loops, RpcFigures, RpcRow, Transport};
use super::{Options, Scale};
use crate::{godot, library_names, process};

/// The `--only` selectors a `--baseline` run takes: the parts that use our extension.
pub(super) const SELECTORS: [&str; 4] = ["raw:ours", "raw:ours_inline", "rpc:ours", "rpc:ours_inline"];

/// The load generator's servers and the RPC transports `options` selects (with no `--only`: all
/// four of ours).
fn selected(options: &Options) -> (Vec<Server>, Vec<Transport>) {
    let chosen = |selector: String| options.only.is_empty() || options.only.contains(&selector);
    let servers = [Server::Ours, Server::OursInline].into_iter().filter(|s| chosen(format!("raw:{}", s.key()))).collect();
    let transports = [Transport::Ours, Transport::OursInline].into_iter().filter(|t| chosen(format!("rpc:{}", t.key()))).collect();
    (servers, transports)
}

/// Runs git in `dir`; its trimmed output, or its error.
fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let output = Command::new("git").args(args).current_dir(dir).output().map_err(|e| format!("cannot run git: {e}"))?;
    if !output.status.success() {
        return Err(format!("git {} failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// "`abc1234` subject" of HEAD in `dir`, followed by "(with uncommitted changes)" when
/// `mention_changes` and its tracked files differ from HEAD.
fn describe(dir: &Path, mention_changes: bool) -> String {
    let line = command_output("git", &["log", "-1", "--format=%h %s"], dir);
    let (hash, subject) = line.split_once(' ').unwrap_or((&line, ""));
    let dirty = mention_changes && !command_output("git", &["status", "--porcelain", "--untracked-files=no"], dir).is_empty();
    format!("`{hash}` {subject}{}", if dirty { " (with uncommitted changes)" } else { "" })
}

/// Checks out `rev` in `<target_dir>/bench-baseline/<short hash>` (reused when it is already
/// there at that revision), builds its extension in release mode in
/// `<target_dir>/bench-baseline/target`, installs it into that worktree's addon and imports its
/// Godot project; the worktree.
fn prepare_worktree(godot: &Path, root: &Path, target_dir: &Path, rev: &str) -> Result<PathBuf, String> {
    let full = git(root, &["rev-parse", "--verify", &format!("{rev}^{{commit}}")])
        .map_err(|e| format!("--baseline {rev}: no such commit ({e})"))?;
    let short = git(root, &["rev-parse", "--short", &full])?;
    let base = target_dir.join("bench-baseline");
    let worktree = base.join(&short);
    if worktree.exists() {
        let head = git(&worktree, &["rev-parse", "HEAD"]).unwrap_or_default();
        if head != full {
            return Err(format!("{} is not a worktree at {short}; remove it (git worktree remove --force {0})", worktree.display()));
        }
        println!("bench: reusing the worktree {} at {short}", worktree.display());
    } else {
        // A worktree folder deleted by hand leaves an entry that blocks adding it again.
        git(root, &["worktree", "prune"])?;
        std::fs::create_dir_all(&base).map_err(|e| format!("cannot create {}: {e}", base.display()))?;
        let path = worktree.to_str().ok_or("the target directory's path is not UTF-8")?;
        git(root, &["worktree", "add", "--detach", path, &full])?;
        println!("bench: checked out {short} in {}", worktree.display());
    }
    let gdextension = worktree.join("addons/websocket_rs/websocket_rs.gdextension");
    let server_script = worktree.join("godot-project/bench/ours_server.gd");
    if !gdextension.exists() || !server_script.exists() {
        return Err(format!("{short} has no {} or {}: it predates this bench's layout", gdextension.display(), server_script.display()));
    }
    let baseline_target = base.join("target");
    println!("bench: building the extension of {short} (release, {})", baseline_target.display());
    let mut cargo = Command::new(env!("CARGO"));
    cargo.current_dir(&worktree).args(["build", "--release", "-p", "websocket_rs"]).env("CARGO_TARGET_DIR", &baseline_target);
    process::run_checked(&mut cargo)?;
    let (built, installed) = library_names()?;
    let from = baseline_target.join("release").join(built);
    let to = worktree.join("addons/websocket_rs/bin").join(installed);
    let dir = to.parent().expect("bin folder");
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    std::fs::copy(&from, &to).map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))?;
    println!("bench: installed {}", to.display());
    godot::import_project(godot, &worktree.join("godot-project"))?;
    Ok(worktree)
}

/// One figure measured with both builds, one value per round (None: not measured).
pub(super) struct Compared {
    /// The row's name.
    pub(super) name: String,
    /// Its unit.
    pub(super) unit: &'static str,
    /// Whether a higher number is better.
    pub(super) higher_is_better: bool,
    /// REV's values, round by round.
    pub(super) before: Vec<Option<f64>>,
    /// The working tree's values, round by round.
    pub(super) after: Vec<Option<f64>>,
}

/// One part's table: a server of the load generator or an RPC transport.
pub(super) struct Part {
    /// The section's title.
    pub(super) title: String,
    /// Its rows.
    pub(super) rows: Vec<Compared>,
}

/// The mean of the measured values; None when none was.
pub(super) fn mean(values: &[Option<f64>]) -> Option<f64> {
    let measured: Vec<f64> = values.iter().flatten().copied().collect();
    (!measured.is_empty()).then(|| measured.iter().sum::<f64>() / measured.len() as f64)
}

/// How far one build's rounds lie apart: (largest − smallest) / mean, in percent; None with fewer
/// than two measured rounds or a mean of 0.
pub(super) fn spread_percent(values: &[Option<f64>]) -> Option<f64> {
    let measured: Vec<f64> = values.iter().flatten().copied().collect();
    if measured.len() < 2 {
        return None;
    }
    let (low, high) = measured.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    let mean = mean(values)?;
    (mean != 0.0).then(|| 100.0 * (high - low) / mean.abs())
}

impl Compared {
    /// The change of the mean from before to after, in percent of before; None when either is
    /// missing or before is 0.
    pub(super) fn change_percent(&self) -> Option<f64> {
        let (before, after) = (mean(&self.before)?, mean(&self.after)?);
        (before != 0.0).then(|| 100.0 * (after - before) / before.abs())
    }

    /// The larger of the two builds' round-to-round spreads: the noise a change must exceed.
    pub(super) fn spread_percent(&self) -> Option<f64> {
        match (spread_percent(&self.before), spread_percent(&self.after)) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether the change exceeds the spread: Some(true) better, Some(false) worse, None within
    /// the noise or unknown.
    pub(super) fn measured_difference(&self) -> Option<bool> {
        let (change, spread) = (self.change_percent()?, self.spread_percent()?);
        (change.abs() > spread).then_some((change > 0.0) == self.higher_is_better)
    }
}

/// The load generator's rows of one server, from each round's figures of both builds.
pub(super) fn raw_part(server: Server, before: &[Figures], after: &[Figures]) -> Part {
    let value = |figures: &Figures, id: &str| match figures.get(id) {
        Some(Value::Num(v)) => Some(*v),
        _ => None,
    };
    let rows = METRICS
        .iter()
        .map(|m| Compared {
            name: m.name.to_string(),
            unit: m.unit,
            higher_is_better: m.higher_is_better,
            before: before.iter().map(|f| value(f, m.id)).collect(),
            after: after.iter().map(|f| value(f, m.id)).collect(),
        })
        .collect();
    Part { title: format!("Load generator: {}", server.label()), rows }
}

/// The RPC rows of one transport, from each round's rows of both builds.
pub(super) fn rpc_part(transport: Transport, before: &[Vec<RpcRow>], after: &[Vec<RpcRow>]) -> Part {
    type Pick = fn(&RpcFigures) -> Option<f64>;
    let kinds: [(&str, &'static str, bool, Pick); 5] = [
        ("RPCs/s, 32 in flight", "RPCs/s", true, |f| Some(f.rpcs_per_s)),
        ("server CPU per RPC", "µs/RPC", false, |f| f.server_cpu_us),
        ("client CPU per RPC", "µs/RPC", false, |f| Some(f.client_cpu_us)),
        ("round trip p50, one in flight", "µs", false, |f| Some(f.p50_us)),
        ("round trip p99, one in flight", "µs", false, |f| Some(f.p99_us)),
    ];
    let value = |rows: &[RpcRow], loops: Loops, pick: Pick| {
        rows.iter().find(|r| r.loops == loops && r.transport == transport).and_then(|r| r.outcome.as_ref().ok()).and_then(pick)
    };
    let mut rows = Vec::new();
    for loops in Loops::ALL {
        for (name, unit, higher_is_better, pick) in kinds {
            rows.push(Compared {
                name: format!("{}: {name}", loops.label()),
                unit,
                higher_is_better,
                before: before.iter().map(|r| value(r, loops, pick)).collect(),
                after: after.iter().map(|r| value(r, loops, pick)).collect(),
            });
        }
    }
    Part { title: format!("Godot to Godot RPCs: {}", transport.label()), rows }
}

/// Values of the rounds, "1.23 / 1.25" ("n/a" for one not measured).
fn rounds_cell(values: &[Option<f64>]) -> String {
    values.iter().map(|v| v.map_or("n/a".into(), format_value)).collect::<Vec<_>>().join(" / ")
}

/// A percentage with its sign, "+1.2%".
fn signed_percent(p: f64) -> String {
    format!("{p:+.1}%")
}

/// One part's markdown table; per-round columns only with more than one round.
pub(super) fn table(part: &Part, rounds: usize) -> String {
    let mut md = format!("## {}\n\n", part.title);
    if rounds > 1 {
        md.push_str("| metric | unit | before, each round | before, mean | after, each round | after, mean | change ");
        md.push_str("| spread of one build | measured difference |\n");
        md.push_str("|---|---|---:|---:|---:|---:|---:|---:|---|\n");
    } else {
        md.push_str("| metric | unit | before | after | change | spread of one build | measured difference |\n");
        md.push_str("|---|---|---:|---:|---:|---:|---|\n");
    }
    for row in &part.rows {
        let direction = if row.higher_is_better { "higher is better" } else { "lower is better" };
        let mean_cell = |values: &[Option<f64>]| mean(values).map_or("n/a".into(), format_value);
        let change = row.change_percent().map_or("n/a".into(), |c| {
            let better = (c > 0.0) == row.higher_is_better;
            if c == 0.0 {
                "0.0%".into()
            } else {
                format!("{} ({})", signed_percent(c), if better { "better" } else { "worse" })
            }
        });
        let spread = row.spread_percent().map_or("n/a".into(), |s| format!("{s:.1}%"));
        let verdict = match (row.change_percent(), row.spread_percent(), row.measured_difference()) {
            (None, _, _) => "n/a: not measured",
            (Some(_), None, _) => "unknown: one round",
            (_, _, None) => "no: within the spread",
            (_, _, Some(true)) => "**yes: better**",
            (_, _, Some(false)) => "**yes: worse**",
        };
        let values = if rounds > 1 {
            format!("{} | {} | {} | {}", rounds_cell(&row.before), mean_cell(&row.before), rounds_cell(&row.after), mean_cell(&row.after))
        } else {
            format!("{} | {}", mean_cell(&row.before), mean_cell(&row.after))
        };
        md.push_str(&format!("| {} | {} ({direction}) | {values} | {change} | {spread} | {verdict} |\n", row.name, row.unit));
    }
    md.push('\n');
    md
}

/// The paragraph on the noise: how the spread is computed, its median and largest over every row,
/// and how many rows changed by more than it.
pub(super) fn noise_summary(parts: &[Part], rounds: usize) -> String {
    let rows: Vec<&Compared> = parts.iter().flat_map(|p| &p.rows).collect();
    let mut spreads: Vec<(f64, &str)> = rows.iter().filter_map(|r| Some((r.spread_percent()?, r.name.as_str()))).collect();
    let mut md = format!(
        "How to read it: this machine has 2 cores shared with other work, so the same build measures differently from \
         one minute to the next. The two builds therefore ran interleaved, per part: before, after{}. \"Change\" is \
         the after mean against the before mean. \"Spread of one build\" is how far that build's own rounds lie apart \
         ((largest − smallest) / mean, the larger of the two builds'): a change within it is not a measured \
         difference, whatever its sign.",
        if rounds > 1 { ", before, after" } else { "" }
    );
    if spreads.is_empty() {
        md.push_str(&format!(
            " This run had {rounds} round per build, so there is no spread and no change here counts as measured: \
             a `--quick` run only shows that both builds run. Run without `--quick` for two rounds.\n\n"
        ));
        return md;
    }
    spreads.sort_by(|a, b| a.0.total_cmp(&b.0));
    let median = spreads[spreads.len() / 2].0;
    let (largest, largest_row) = spreads[spreads.len() - 1];
    let better = rows.iter().filter(|r| r.measured_difference() == Some(true)).count();
    let worse = rows.iter().filter(|r| r.measured_difference() == Some(false)).count();
    md.push_str(&format!(
        " Over the {} rows with a spread, the median spread was {median:.1}% and the largest {largest:.1}% ({largest_row}). \
         {} of them changed by more than their spread: {better} better, {worse} worse. With {rounds} rounds a \
         spread is itself a rough figure; a difference that matters shows again in another run.\n\n",
        spreads.len(),
        better + worse,
    ));
    md
}

/// The whole `before-after.md`.
fn markdown(before: &str, after: &str, header: &str, parts: &[Part], rounds: usize, logs: &[(String, Vec<String>)]) -> String {
    let mut md = String::from("# Before and after\n\n");
    md.push_str(header);
    md.push_str(&format!("- **before**: {before}\n- **after**: {after}\n\n"));
    md.push_str(&noise_summary(parts, rounds));
    for part in parts {
        md.push_str(&table(part, rounds));
    }
    md.push_str("## Every result line\n\n```text\n");
    for (label, lines) in logs {
        for line in lines {
            md.push_str(&format!("{label} {line}\n"));
        }
    }
    md.push_str("```\n");
    md
}

/// Builds REV's extension, runs the selected parts with both builds, interleaved, and writes
/// `before-after.md`; Ok(false) when a run lost, reordered or corrupted a message (nothing is
/// written then).
pub(super) fn run(godot: &Path, root: &Path, loadgen: &Path, target_dir: &Path, rev: &str, options: &Options) -> Result<bool, String> {
    let worktree = prepare_worktree(godot, root, target_dir, rev)?;
    let (servers, transports) = selected(options);
    let rounds = if options.quick { 1 } else { 2 };
    let started = std::time::Instant::now();
    let raw_bench = |project: PathBuf| RawBench {
        godot: godot.to_path_buf(),
        project,
        loadgen: loadgen.to_path_buf(),
        bun_script: root.join("rust/bench/bun/server.js"),
        bun: Err("not run (--baseline)".into()),
        scale: Scale::new(options.quick),
        log: Vec::new(),
    };
    let (mut before_bench, mut after_bench) = (raw_bench(worktree.join("godot-project")), raw_bench(root.join("godot-project")));
    let mut parts = Vec::new();
    let mut ok = true;
    for &server in &servers {
        let (mut before, mut after) = (Vec::new(), Vec::new());
        for round in 1..=rounds {
            for (name, raw, figures) in [("before", &mut before_bench, &mut before), ("after", &mut after_bench, &mut after)] {
                println!("== {}, round {round} of {rounds}: {name}", server.label());
                let (f, passed) = raw.measure(server)?;
                ok &= passed;
                figures.push(f);
            }
        }
        parts.push(raw_part(server, &before, &after));
    }
    let (mut before_rpc_log, mut after_rpc_log) = (Vec::new(), Vec::new());
    for &transport in &transports {
        let (mut before, mut after) = (Vec::new(), Vec::new());
        for round in 1..=rounds {
            for (name, bench, log, rows) in
                [("before", &before_bench, &mut before_rpc_log, &mut before), ("after", &after_bench, &mut after_rpc_log, &mut after)]
            {
                println!("== RPC over {}, round {round} of {rounds}: {name}", transport.label());
                let (r, passed) = rpc::run(godot, &bench.project, &bench.scale, &[transport], log)?;
                ok &= passed;
                rows.push(r);
            }
        }
        parts.push(rpc_part(transport, &before, &after));
    }
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    if !ok {
        println!("bench: a run lost, reordered or corrupted messages (see above); nothing written");
        return Ok(false);
    }

    let (before, after) = (describe(&worktree, false), describe(root, true));
    let mut flags = format!(" --baseline {rev}");
    if options.quick {
        flags.push_str(" --quick");
    }
    if !options.only.is_empty() {
        flags.push_str(&format!(" --only {}", options.only.join(",")));
    }
    let header = format!(
        "Written by `cargo xtask bench{flags}` on {} (the run took {minutes:.1} minutes), Godot {}, {}. \"Before\" is our \
         extension built from the first revision and run with that revision's `godot-project/` (a worktree under \
         `<target>/bench-baseline/`); \"after\" is the working tree's. The load generator (`rust/bench`) is the \
         working tree's for both. The workloads are those of [README.md](README.md) (`cargo xtask bench`), at its {} \
         scale.\n\n",
        command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"], root),
        command_output(&godot.display().to_string(), &["--version"], root),
        machine(),
        if options.quick { "--quick" } else { "full" },
    );
    let logs = [
        ("before".to_string(), before_bench.log.iter().chain(&before_rpc_log).cloned().collect()),
        ("after".to_string(), after_bench.log.iter().chain(&after_rpc_log).cloned().collect()),
    ];
    let markdown = markdown(&before, &after, &header, &parts, rounds, &logs);
    let dir = if options.quick { target_dir.join("bench-quick") } else { root.join("docs/bench") };
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join("before-after.md");
    std::fs::write(&path, &markdown).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!("{markdown}");
    println!("bench: wrote {} ({minutes:.1} minutes)", path.display());
    println!("bench: the worktree {} stays for the next run (git worktree remove --force to drop it)", worktree.display());
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_string).collect()
    }

    fn row(higher_is_better: bool, before: &[f64], after: &[f64]) -> Compared {
        Compared {
            name: "echo".into(),
            unit: "messages/s",
            higher_is_better,
            before: before.iter().map(|v| Some(*v)).collect(),
            after: after.iter().map(|v| Some(*v)).collect(),
        }
    }

    #[test]
    fn baseline_arguments_are_parsed() {
        let options = Options::parse(&args("--baseline 3566676 --quick --only raw:ours,rpc:ours_inline")).unwrap().unwrap();
        assert_eq!(options.baseline.as_deref(), Some("3566676"));
        assert!(options.quick);
        assert_eq!(options.only, ["raw:ours", "rpc:ours_inline"]);
        let (servers, transports) = selected(&options);
        assert_eq!(servers, [Server::Ours]);
        assert_eq!(transports, [Transport::OursInline]);
    }

    #[test]
    fn no_only_selects_all_four_of_ours() {
        let options = Options::parse(&args("--baseline HEAD~1")).unwrap().unwrap();
        assert!(!options.quick);
        let (servers, transports) = selected(&options);
        assert_eq!(servers, [Server::Ours, Server::OursInline]);
        assert_eq!(transports, [Transport::Ours, Transport::OursInline]);
    }

    #[test]
    fn baseline_refuses_parts_without_our_extension() {
        let error = Options::parse(&args("--baseline HEAD --only raw:builtin")).err().unwrap();
        assert!(error.contains("raw:builtin with --baseline"), "{error}");
        // Without --baseline the same selector is fine.
        assert!(Options::parse(&args("--only raw:builtin")).unwrap().is_some());
    }

    #[test]
    fn missing_values_and_unknown_arguments_are_errors() {
        assert!(Options::parse(&args("--baseline")).is_err());
        assert!(Options::parse(&args("--baseline --quick")).is_err());
        assert!(Options::parse(&args("--only")).is_err());
        assert!(Options::parse(&args("--only raw:nobody")).is_err());
        assert!(Options::parse(&args("--qiuck")).is_err());
    }

    #[test]
    fn help_asks_for_the_usage() {
        assert!(Options::parse(&args("--help")).unwrap().is_none());
        assert!(Options::parse(&args("--quick -h")).unwrap().is_none());
    }

    #[test]
    fn the_default_run_parses_as_before() {
        let options = Options::parse(&[]).unwrap().unwrap();
        assert!(!options.quick && options.only.is_empty() && options.baseline.is_none());
    }

    #[test]
    fn spread_is_the_range_over_the_mean() {
        assert_eq!(spread_percent(&[Some(90.0), Some(110.0)]), Some(20.0));
        assert_eq!(spread_percent(&[Some(100.0)]), None);
        assert_eq!(spread_percent(&[Some(100.0), None]), None);
        assert_eq!(mean(&[Some(1.0), None, Some(3.0)]), Some(2.0));
        assert_eq!(mean(&[None]), None);
    }

    #[test]
    fn a_change_within_the_spread_is_no_measured_difference() {
        // Before spreads 20%, after 2%: a 5% gain is noise.
        let r = row(true, &[90.0, 110.0], &[104.0, 106.0]);
        assert_eq!(r.change_percent(), Some(5.0));
        assert_eq!(r.spread_percent(), Some(20.0));
        assert_eq!(r.measured_difference(), None);
    }

    #[test]
    fn a_change_beyond_the_spread_is_better_or_worse_by_the_metric_direction() {
        let faster = row(true, &[99.0, 101.0], &[119.0, 121.0]);
        assert_eq!(faster.change_percent(), Some(20.0));
        assert_eq!(faster.measured_difference(), Some(true));
        // The same numbers as CPU per message: higher is worse.
        let costlier = row(false, &[99.0, 101.0], &[119.0, 121.0]);
        assert_eq!(costlier.measured_difference(), Some(false));
    }

    #[test]
    fn the_table_shows_rounds_means_change_and_verdict() {
        let part = Part { title: "Load generator: ours".into(), rows: vec![row(false, &[2.0, 2.2], &[2.6, 2.6])] };
        let md = table(&part, 2);
        assert!(md.contains("## Load generator: ours"), "{md}");
        let expected = "| echo | messages/s (lower is better) | 2.00 / 2.20 | 2.10 | 2.60 / 2.60 | 2.60 | +23.8% (worse) | 9.5% | **yes: worse** |";
        assert!(md.contains(expected), "{md}");
        let one_round = table(&Part { title: "t".into(), rows: vec![row(true, &[100.0], &[95.0])] }, 1);
        let expected = "| echo | messages/s (higher is better) | 100 | 95.0 | -5.0% (worse) | n/a | unknown: one round |";
        assert!(one_round.contains(expected), "{one_round}");
    }

    #[test]
    fn the_noise_summary_counts_rows_beyond_their_spread() {
        let rows = vec![
            row(true, &[99.0, 101.0], &[119.0, 121.0]),
            row(true, &[90.0, 110.0], &[104.0, 106.0]),
            row(false, &[10.0, 10.0], &[10.5, 10.5]),
        ];
        let summary = noise_summary(&[Part { title: "p".into(), rows }], 2);
        assert!(summary.contains("median spread was 2.0% and the largest 20.0%"), "{summary}");
        assert!(summary.contains("2 of them changed by more than their spread: 1 better, 1 worse"), "{summary}");
        let quick = noise_summary(&[Part { title: "p".into(), rows: vec![row(true, &[1.0], &[2.0])] }], 1);
        assert!(quick.contains("no change here counts as measured"), "{quick}");
    }

    #[test]
    fn rpc_rows_follow_the_loops() {
        let figures = |rate: f64| RpcFigures { rpcs_per_s: rate, server_cpu_us: None, client_cpu_us: 5.0, p50_us: 100.0, p99_us: 200.0 };
        let rows = |rate: f64| {
            vec![
                RpcRow { loops: Loops::Uncapped, transport: Transport::Ours, outcome: Ok(figures(rate)) },
                RpcRow { loops: Loops::Pinned, transport: Transport::Ours, outcome: Err("no taskset".into()) },
            ]
        };
        let part = rpc_part(Transport::Ours, &[rows(1000.0)], &[rows(1100.0)]);
        assert_eq!(part.rows.len(), Loops::ALL.len() * 5);
        let rate = &part.rows[0];
        assert_eq!((rate.before.as_slice(), rate.after.as_slice()), ([Some(1000.0)].as_slice(), [Some(1100.0)].as_slice()));
        assert_eq!(part.rows[1].before, [None], "server CPU was not measured");
        assert!(part.rows.iter().filter(|r| r.name.starts_with(Loops::Pinned.label())).all(|r| r.before == [None]));
    }
}
