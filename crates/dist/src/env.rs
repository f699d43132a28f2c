//! The environment `torchrun` (and `just train-ddp`) sets for every process:
//! `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT`
//! (as read by PyTorch's `env://` rendezvous).
use anyhow::{bail, Context, Result};
use std::time::Duration;

/// One process's place in the group, parsed and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistEnv {
    pub rank: usize,
    pub world_size: usize,
    pub local_rank: usize,
    pub master_addr: String,
    pub master_port: u16,
    /// torchrun's agent hosts the TCPStore (`TORCHELASTIC_USE_AGENT_STORE=True`): rank 0
    /// connects to it instead of starting one.
    pub agent_store: bool,
    /// `TORCHELASTIC_RESTART_COUNT` (0 outside torchrun): each restart rendezvous afresh.
    pub restart: u64,
}

/// The variables a distributed run needs, in the order they are checked.
pub const VARS: [&str; 5] = [
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
];

/// Collective timeout override (seconds), read by [`timeout_from_env`].
pub const TIMEOUT_VAR: &str = "LADDER_DIST_TIMEOUT_S";

impl DistEnv {
    /// From the process environment; `Ok(None)` when neither `RANK` nor `WORLD_SIZE` is
    /// set (a plain single-process run).
    pub fn from_env() -> Result<Option<Self>> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// From any lookup (the process environment, or a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let (rank, world) = (get("RANK"), get("WORLD_SIZE"));
        if rank.is_none() && world.is_none() {
            return Ok(None);
        }
        let need = |k: &str| {
            get(k).with_context(|| {
                format!("{k} is not set: a distributed run needs all of {VARS:?} (torchrun and `just train-ddp` set them)")
            })
        };
        let int = |k: &str, v: String| -> Result<usize> {
            v.trim()
                .parse::<usize>()
                .with_context(|| format!("{k}={v:?} is not a non-negative integer"))
        };
        let world_size = int("WORLD_SIZE", need("WORLD_SIZE")?)?;
        let rank = int("RANK", need("RANK")?)?;
        if world_size == 0 {
            bail!("WORLD_SIZE=0: the group needs at least one process");
        }
        if rank >= world_size {
            bail!(
                "RANK={rank} is out of range for WORLD_SIZE={world_size}: expected 0..={}",
                world_size - 1
            );
        }
        let local_rank = match get("LOCAL_RANK") {
            Some(v) => int("LOCAL_RANK", v)?,
            None => rank,
        };
        if local_rank > rank {
            bail!("LOCAL_RANK={local_rank} is larger than RANK={rank}: a node's local ranks are a subset of the global ones");
        }
        let master_addr = need("MASTER_ADDR")?.trim().to_string();
        if master_addr.is_empty() {
            bail!("MASTER_ADDR is empty: expected the host name or IP address of rank 0");
        }
        let port = need("MASTER_PORT")?;
        let master_port = match port.trim().parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => bail!("MASTER_PORT={port:?} is not a TCP port (1..=65535)"),
        };
        let agent_store = get("TORCHELASTIC_USE_AGENT_STORE")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        let restart = match get("TORCHELASTIC_RESTART_COUNT") {
            Some(v) => v.trim().parse::<u64>().with_context(|| {
                format!("TORCHELASTIC_RESTART_COUNT={v:?} is not a non-negative integer")
            })?,
            None => 0,
        };
        Ok(Some(Self {
            rank,
            world_size,
            local_rank,
            master_addr,
            master_port,
            agent_store,
            restart,
        }))
    }

    /// Whether rank 0 is on this host's loopback (all ranks on one machine).
    pub fn is_loopback(&self) -> bool {
        let a = self.master_addr.as_str();
        a == "localhost" || a.starts_with("127.") || a == "::1"
    }
}

/// The collective timeout: `LADDER_DIST_TIMEOUT_S` when set (a positive number of seconds),
/// else `default`.
pub fn timeout_from_env(default: Duration) -> Result<Duration> {
    match std::env::var(TIMEOUT_VAR) {
        Ok(v) => match v.trim().parse::<f64>() {
            Ok(s) if s > 0.0 && s.is_finite() => Ok(Duration::from_secs_f64(s)),
            _ => bail!("{TIMEOUT_VAR}={v:?} is not a positive number of seconds"),
        },
        Err(_) => Ok(default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(pairs: &[(&str, &str)]) -> Result<Option<DistEnv>> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        DistEnv::from_lookup(|k| m.get(k).cloned())
    }

    const OK: [(&str, &str); 4] = [
        ("RANK", "1"),
        ("WORLD_SIZE", "2"),
        ("MASTER_ADDR", "127.0.0.1"),
        ("MASTER_PORT", "29500"),
    ];

    #[test]
    fn parses_torchrun_env() {
        let e = parse(&OK).unwrap().unwrap();
        assert_eq!(
            (e.rank, e.world_size, e.local_rank, e.master_port),
            (1, 2, 1, 29500)
        );
        assert!(e.is_loopback());
        assert!(!e.agent_store && e.restart == 0);
        assert!(parse(&[]).unwrap().is_none());
        let mut torchrun = OK.to_vec();
        torchrun.extend([
            ("TORCHELASTIC_USE_AGENT_STORE", "True"),
            ("TORCHELASTIC_RESTART_COUNT", "2"),
        ]);
        let e = parse(&torchrun).unwrap().unwrap();
        assert!(e.agent_store && e.restart == 2);
    }

    #[test]
    fn rejects_bad_values_by_name() {
        let with = |k: &str, v: &str| {
            let mut p: Vec<(&str, &str)> = OK.iter().copied().filter(|(n, _)| *n != k).collect();
            if !v.is_empty() {
                p.push((k, v));
            }
            format!("{:#}", parse(&p).unwrap_err())
        };
        assert!(with("RANK", "2").contains("RANK=2 is out of range for WORLD_SIZE=2"));
        assert!(with("WORLD_SIZE", "0").contains("WORLD_SIZE=0"));
        assert!(with("WORLD_SIZE", "two").contains("WORLD_SIZE=\"two\""));
        assert!(with("MASTER_PORT", "70000").contains("MASTER_PORT"));
        assert!(with("MASTER_ADDR", "").contains("MASTER_ADDR is not set"));
        assert!(with("RANK", "").contains("RANK is not set"));
    }
}
