//! The test network of `cargo xtask chaos`: two network namespaces (server and client) joined by a
//! veth pair, and the impairments put on it: nftables rules on each side's input (random loss, a
//! partition that drops everything) and tc qdiscs on each veth end (tbf for the rate cap, netem for
//! delay where the kernel has it). Names carry the process id, so two runs never collide; dropping
//! the [`Network`] deletes both namespaces (and with them the veth pair and every rule).

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Prefix of every namespace a run makes (`wsrs-chaos-<pid>-s` and `-c`).
const PREFIX: &str = "wsrs-chaos-";
/// The nftables table (one per namespace) that holds the impairment rules.
const TABLE: &str = "wsrs_chaos";

/// One end of the link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Side {
    /// The namespace the core `Server` listens in.
    Server,
    /// The namespace the core `Client` connects from.
    Client,
}

/// Two namespaces joined by a veth pair, each with an nftables table whose input chain holds the
/// impairment rules for traffic arriving over the veth.
pub(super) struct Network {
    nft: PathBuf,
    server_ns: String,
    client_ns: String,
    server_if: String,
    client_if: String,
    /// The server side's address on the veth.
    pub(super) server_ip: Ipv4Addr,
}

impl Network {
    /// Makes the namespaces, the veth pair (10.201.0.1/30 on the server side, .2 on the client
    /// side, one TCP segment per packet) and the nftables tables. Namespaces left behind by runs whose process is gone are
    /// deleted first. On failure, whatever was made is removed again.
    pub(super) fn create(nft: &Path) -> Result<Network, String> {
        remove_stale();
        let pid = std::process::id();
        let network = Network {
            nft: nft.to_path_buf(),
            server_ns: format!("{PREFIX}{pid}-s"),
            client_ns: format!("{PREFIX}{pid}-c"),
            server_if: format!("wcs{pid}"),
            client_if: format!("wcc{pid}"),
            server_ip: Ipv4Addr::new(10, 201, 0, 1),
        };
        // From here on, Drop cleans up whatever was made.
        ip(&["netns", "add", &network.server_ns])?;
        ip(&["netns", "add", &network.client_ns])?;
        ip(&["link", "add", &network.server_if, "type", "veth", "peer", "name", &network.client_if])?;
        ip(&["link", "set", &network.server_if, "netns", &network.server_ns])?;
        ip(&["link", "set", &network.client_if, "netns", &network.client_ns])?;
        for (ns, interface, address) in
            [(&network.server_ns, &network.server_if, "10.201.0.1/30"), (&network.client_ns, &network.client_if, "10.201.0.2/30")]
        {
            ip(&["-n", ns, "addr", "add", address, "dev", interface])?;
            // veth hands TCP's 64 KB segmentation-offload packets to the other end whole; one
            // segment per packet makes "5% of the packets" mean 5% of what a real link carries.
            if let Err(err) = ip(&["-n", ns, "link", "set", "dev", interface, "gso_max_segs", "1", "gso_max_size", "1500"]) {
                println!("chaos: packets stay segmentation-offload sized (up to 64 KB; loss counts them so): {err}");
            }
            ip(&["-n", ns, "link", "set", interface, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        for side in [Side::Server, Side::Client] {
            network.nft_script(side, &format!("add table inet {TABLE}\nadd chain inet {TABLE} in {{ type filter hook input priority 0; policy accept; }}\n"))?;
        }
        Ok(network)
    }

    fn namespace(&self, side: Side) -> &str {
        match side {
            Side::Server => &self.server_ns,
            Side::Client => &self.client_ns,
        }
    }

    fn interface(&self, side: Side) -> &str {
        match side {
            Side::Server => &self.server_if,
            Side::Client => &self.client_if,
        }
    }

    /// Moves the calling thread into this side's namespace: sockets it makes from now on (and
    /// those of threads it spawns afterwards, such as the core's I/O threads) live there.
    pub(super) fn enter(&self, side: Side) -> Result<(), String> {
        let path = format!("/run/netns/{}", self.namespace(side));
        let file = File::open(&path).map_err(|e| format!("cannot open {path}: {e}"))?;
        // SAFETY: setns on a namespace file descriptor we own; it only changes this thread's
        // network namespace.
        let result = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        if result != 0 {
            return Err(format!("setns({path}): {}", std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Runs an nftables script in this side's namespace.
    fn nft_script(&self, side: Side, script: &str) -> Result<(), String> {
        let path = std::env::temp_dir().join(format!("wsrs-chaos-{}-{:?}.nft", std::process::id(), side));
        std::fs::write(&path, script).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        let result = ip_exec(self.namespace(side), self.nft.to_string_lossy().as_ref(), &["-f", &path.to_string_lossy()]);
        let _ = std::fs::remove_file(&path);
        result.map(|_| ())
    }

    /// Drops `percent` % of the packets arriving over the veth, at random, on both sides (so each
    /// direction loses that share): `numgen random mod 100 < percent drop`, with a counter.
    pub(super) fn set_loss(&self, percent: u32) -> Result<(), String> {
        self.set_rule(&format!("numgen random mod 100 < {percent} counter drop"))
    }

    /// Drops every packet arriving over the veth on both sides: a partition.
    pub(super) fn partition(&self) -> Result<(), String> {
        self.set_rule("counter drop")
    }

    /// Replaces the rule of each side's input chain with `rule` (for packets from the veth only:
    /// the delaying relay's loopback leg is left alone).
    fn set_rule(&self, rule: &str) -> Result<(), String> {
        for side in [Side::Server, Side::Client] {
            let interface = self.interface(side);
            self.nft_script(side, &format!("flush chain inet {TABLE} in\nadd rule inet {TABLE} in iifname \"{interface}\" {rule}\n"))?;
        }
        Ok(())
    }

    /// Packets the current rules dropped, both sides together (from their counters).
    pub(super) fn dropped_packets(&self) -> Result<u64, String> {
        let mut total = 0;
        for side in [Side::Server, Side::Client] {
            let listing = ip_exec(self.namespace(side), self.nft.to_string_lossy().as_ref(), &["list", "chain", "inet", TABLE, "in"])?;
            for words in listing.lines().map(|l| l.split_whitespace().collect::<Vec<_>>()) {
                if let Some(i) = words.iter().position(|w| *w == "packets") {
                    total += words.get(i + 1).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
                }
            }
        }
        Ok(total)
    }

    /// Removes every nftables rule (the link works again).
    pub(super) fn heal(&self) -> Result<(), String> {
        for side in [Side::Server, Side::Client] {
            self.nft_script(side, &format!("flush chain inet {TABLE} in\n"))?;
        }
        Ok(())
    }

    /// Puts the qdisc `spec` (e.g. `tbf rate 1mbit ...`) as the root of both veth ends, so that
    /// it acts on each direction's egress.
    pub(super) fn set_qdisc(&self, spec: &[&str]) -> Result<(), String> {
        for side in [Side::Server, Side::Client] {
            let mut args = vec!["qdisc", "replace", "dev", self.interface(side), "root"];
            args.extend_from_slice(spec);
            ip_exec(self.namespace(side), "tc", &args)?;
        }
        Ok(())
    }

    /// Removes the qdiscs `set_qdisc` put on the veth ends (back to the default).
    pub(super) fn clear_qdisc(&self) -> Result<(), String> {
        for side in [Side::Server, Side::Client] {
            // Fails harmlessly when there is none.
            let _ = ip_exec(self.namespace(side), "tc", &["qdisc", "del", "dev", self.interface(side), "root"]);
        }
        Ok(())
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for ns in [&self.server_ns, &self.client_ns] {
            let _ = ip(&["netns", "del", ns]);
        }
        // Only left in the first namespace when moving it failed.
        let _ = Command::new("ip").args(["link", "del", &self.server_if]).output();
    }
}

/// Whether this machine lets us make a network namespace (we are root and the kernel allows it):
/// Err with the reason when not.
pub(super) fn namespaces_allowed() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root: network namespaces, veth pairs and setns(2) need CAP_SYS_ADMIN and CAP_NET_ADMIN".into());
    }
    let probe = format!("{PREFIX}{}-probe", std::process::id());
    ip(&["netns", "add", &probe]).map_err(|e| format!("`ip netns add` fails here: {e}"))?;
    let _ = ip(&["netns", "del", &probe]);
    Ok(())
}

/// Deletes `wsrs-chaos-<pid>-*` namespaces whose process no longer runs (a run that was killed).
fn remove_stale() {
    let Ok(listing) = Command::new("ip").args(["netns", "list"]).output() else { return };
    for name in String::from_utf8_lossy(&listing.stdout).lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(rest) = name.strip_prefix(PREFIX) else { continue };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            println!("chaos: deleting the namespace {name} left by an earlier run (process {pid} is gone)");
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// Runs `ip` with these arguments; Err with its output when it fails.
fn ip(args: &[&str]) -> Result<String, String> {
    run(Command::new("ip").args(args))
}

/// Runs `program` inside namespace `ns` (`ip netns exec`).
fn ip_exec(ns: &str, program: &str, args: &[&str]) -> Result<String, String> {
    run(Command::new("ip").args(["netns", "exec", ns, program]).args(args))
}

fn run(command: &mut Command) -> Result<String, String> {
    let output = command.output().map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{command:?} failed with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
