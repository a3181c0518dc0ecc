//! Settings from the environment, under arbitrary values: every `SHOP_*` variable is read as
//! its setting's type or refused with an error, never a panic, and a variable changes only
//! the setting it names.

use proptest::prelude::*;
use reference_shop::Config;

/// The environment variable of every setting the defaults hold (`SHOP_PAYMENT__RETRY__MAX_ATTEMPTS`),
/// tables included, plus a few that name no setting.
fn variables() -> Vec<String> {
    fn walk(prefix: &str, table: &toml::Table, out: &mut Vec<String>) {
        for (key, value) in table {
            let name = format!("{prefix}__{}", key.to_ascii_uppercase());
            if let toml::Value::Table(inner) = value {
                walk(&name, inner, out);
            }
            out.push(name);
        }
    }
    let defaults = toml::Table::try_from(Config::default()).unwrap();
    let mut out = Vec::new();
    for (section, value) in &defaults {
        let name = format!("SHOP_{}", section.to_ascii_uppercase());
        if let toml::Value::Table(inner) = value {
            walk(&name, inner, &mut out);
        }
    }
    out.extend(
        ["SHOP_NOPE__X", "SHOP_SERVER__", "SHOP___", "SHOP_EDGE__RATE__COUNT__DEEPER"]
            .map(String::from),
    );
    out
}

/// Values of every shape a setting takes, and garbage.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "-?[0-9]{1,20}",
        "[0-9]{1,6}(ns|us|ms|s|m|h|d)?",
        "[0-9]{1,3}\\.[0-9]{0,3}",
        Just("true".to_owned()),
        "\\[[0-9a-z\", ]{0,20}\\]",
        "\\{[a-z =\"0-9]{0,20}\\}",
        "(fixed|exponential|count|time|reject|drop_oldest|[a-z_]{1,12})",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_environment_is_read_or_refused(
        vars in prop::collection::vec((prop::sample::select(variables()), value()), 0..6)
    ) {
        // Ok or a typed error; a panic fails the test.
        let _ = Config::load(None, vars);
    }

    #[test]
    // Any token a header can carry: printable ASCII, inner spaces, none around it.
    fn a_variable_changes_only_its_setting(token in "[!-~]([ -~]{0,38}[!-~])?", count in 1u32..1_000_000) {
        let vars = vec![
            ("SHOP_SERVER__ADMIN_TOKEN".to_owned(), token.clone()),
            ("SHOP_EDGE__RATE__COUNT".to_owned(), count.to_string()),
        ];
        let config = Config::load(None, vars).unwrap();
        let defaults = Config::default();
        prop_assert_eq!(&config.server.admin_token, &token);
        prop_assert_eq!(config.edge.rate.count, count);
        prop_assert_eq!(config.edge.rate.period, defaults.edge.rate.period);
        prop_assert_eq!(config.edge.rate.burst, defaults.edge.rate.burst);
        prop_assert_eq!(config.server.addr, defaults.server.addr);
    }
}
