//! The `reference-shop cluster` topology from arbitrary text: `Topology::parse` reads it or
//! refuses it with a typed error naming a path, never a panic. What it accepts can run: known
//! services in start order, at least one replica each, at most 32 processes per service, and
//! every upstream naming a service (and, for `.standby`, standbys) of the same topology.
//! The same text as a `cluster-reaper --watch` value: refused with a message, or a pid above
//! 1 and a stop signal that print back to what parses to the same.

#![no_main]

use libfuzzer_sys::fuzz_target;
use reference_shop::cluster::reaper::Watched;
use reference_shop::cluster::topology::{MAX_PROCESSES, SERVICES, Topology};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(watched) = text.parse::<Watched>() {
        assert!(watched.pid > 1);
        assert_eq!(watched.to_string().parse::<Watched>(), Ok(watched));
    }
    let Ok(topology) = Topology::parse(&text, "fuzz") else { return };
    assert!(!topology.services.is_empty());
    let rank = |name: &str| SERVICES.iter().position(|s| *s == name).expect("a known service");
    assert!(topology.services.windows(2).all(|w| rank(&w[0].name) < rank(&w[1].name)));
    for service in &topology.services {
        assert!(service.replicas >= 1 && service.replicas + service.standby <= MAX_PROCESSES);
        for upstream in service.upstreams.values() {
            let target = topology.services.iter().find(|s| s.name == upstream.service);
            let target = target.expect("an upstream names a service of the topology");
            assert!(!upstream.standby || target.standby > 0);
        }
    }
});
