//! The reference shop's settings from arbitrary environments (and an arbitrary settings
//! file): `Config::load` reads them or refuses them with a typed error, never a panic. What
//! it accepts is usable: it passes `Config::validate`, the admin token is the variable's
//! value exactly (a string stays a string), and the listen address is what std's parser
//! reads from the variable (the shop's own address reader names the wrong part, but never
//! accepts more or less than std).

#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use reference_shop::Config;

/// Variables that name settings of each kind, a few that name none, and a free one.
const NAMES: [&str; 14] = [
    "SHOP_SERVER__ADDR",
    "SHOP_SERVER__ADMIN_TOKEN",
    "SHOP_SERVER__MAX_BODY_BYTES",
    "SHOP_STORAGE__DATA_DIR",
    "SHOP_STORAGE__CONNECT_TIMEOUT",
    "SHOP_STORAGE__MAX_CONNECTIONS",
    "SHOP_HEALTH__STORE_TIMEOUT",
    "SHOP_HEALTH__SHED_WINDOW",
    "SHOP_EDGE__RATE__COUNT",
    "SHOP_PAYMENT__BREAKER__OPEN_WAIT__TYPE",
    "SHOP_QUEUE__SUBSCRIPTION__BACKOFF",
    "DATABASE_URL",
    "SHOP_NOPE__X",
    "SHOP_LOG",
];

#[derive(Debug, Arbitrary)]
struct Var {
    name: u8,
    free_name: Option<String>,
    value: String,
}

#[derive(Debug, Arbitrary)]
struct Input {
    file: Option<String>,
    vars: Vec<Var>,
}

/// A settings file of this process, rewritten for each input that has one.
fn file_path() -> &'static std::path::Path {
    static PATH: OnceLock<std::path::PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        std::env::temp_dir().join(format!("levee-fuzz-shop-config-{}.toml", std::process::id()))
    })
}

fuzz_target!(|input: Input| {
    let vars: Vec<(String, String)> = input
        .vars
        .into_iter()
        .take(8)
        .map(|v| {
            let name = match v.free_name {
                Some(free) if v.name >= NAMES.len() as u8 => free,
                _ => NAMES[usize::from(v.name) % NAMES.len()].to_owned(),
            };
            (name, v.value)
        })
        .collect();
    let file = input.file.map(|text| {
        std::fs::write(file_path(), text).expect("the settings file is written");
        file_path()
    });
    let Ok(config) = Config::load(file, vars.clone()) else { return };
    config.validate().expect("a loaded config is valid");
    let last = |name: &str| vars.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    if let Some(token) = last("SHOP_SERVER__ADMIN_TOKEN") {
        assert_eq!(config.server.admin_token, token, "the token is the variable's value");
    }
    if let Some(addr) = last("SHOP_SERVER__ADDR") {
        let std: SocketAddr = addr.trim().parse().expect("an accepted address is std's too");
        assert_eq!(config.server.addr, std);
    }
});
