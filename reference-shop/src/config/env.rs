//! Settings from the environment, over the file: `SHOP_SECTION__KEY=value`, at any depth
//! (`SHOP_PAYMENT__RETRY__MAX_ATTEMPTS=5`, `SHOP_EDGE__RATE__PERIOD=1s`).
//!
//! A value from the environment carries no type: `123456` is a number to
//! `payment.retry.max_attempts` but a string to `server.admin_token`. So the layered settings
//! are read through a serde [`Deserializer`] ([`Layer`]) that hands each environment value
//! over as the type the setting asks for: a string where a string is wanted (as it was
//! written, spaces and all), a number, a boolean or a list where those are, and, where the
//! setting takes several forms (a duration is `"250ms"` or a number of milliseconds), as TOML
//! reads it when it parses and as a string otherwise. Values from the file keep the types
//! TOML gave them.

use std::collections::BTreeMap;

use serde::de::value::MapDeserializer;
use serde::de::{self, Error as _, IntoDeserializer, Visitor};
use serde::forward_to_deserialize_any;

type Error = toml::de::Error;

/// Settings in layers: tables from the file with environment values set into them.
#[derive(Debug, Clone)]
pub(super) enum Layer {
    /// A value from the file, typed by TOML.
    File(toml::Value),
    /// A value from the environment, typed by the setting that reads it.
    Env(String),
    /// A table, from the file or made by an environment value's path.
    Table(BTreeMap<String, Layer>),
}

impl Layer {
    /// The file's settings.
    pub(super) fn file(table: toml::Table) -> Self {
        Self::Table(
            table
                .into_iter()
                .map(|(k, v)| {
                    let layer = match v {
                        toml::Value::Table(t) => Self::file(t),
                        other => Self::File(other),
                    };
                    (k, layer)
                })
                .collect(),
        )
    }

    /// Sets the setting at `path` (keys from the outermost table in) to `value` from the
    /// environment, replacing what the file said. A table on the way that the file does not
    /// have starts as the `defaults`' table there, so the settings of that table the
    /// environment does not name keep their defaults (`SHOP_EDGE__RATE__COUNT=7` keeps the
    /// default period and burst). Setting a tagged enum's `type` (or `mode`) to another
    /// variant drops the fields of the variant it replaces, except those set from the
    /// environment.
    pub(super) fn set(&mut self, path: &[String], value: String, defaults: &toml::Table) {
        let Some((last, parents)) = path.split_last() else {
            return;
        };
        let mut node = self;
        let mut default = Some(defaults);
        for key in parents {
            node.make_table();
            let Self::Table(entries) = node else { return };
            let below = default.and_then(|t| t.get(key)).and_then(toml::Value::as_table);
            node = entries.entry(key.clone()).or_insert_with(|| {
                below.map_or_else(|| Self::Table(BTreeMap::new()), |t| Self::file(t.clone()))
            });
            default = below;
        }
        node.make_table();
        if let Self::Table(entries) = node {
            // levee's tagged enums say `type`; levee-redis's fail mode says `mode`.
            let other_variant = (last == "type" || last == "mode")
                && matches!(entries.get(last.as_str()), Some(Self::File(v)) if v.as_str() != Some(value.as_str()));
            if other_variant {
                entries.retain(|_, layer| matches!(layer, Self::Env(_)));
            }
            entries.insert(last.clone(), Self::Env(value));
        }
    }

    /// Makes this a table (a value where the environment's path needs a table: the path
    /// wins, and deserializing says what is wrong with it).
    fn make_table(&mut self) {
        if !matches!(self, Self::Table(_)) {
            *self = Self::Table(BTreeMap::new());
        }
    }

    /// The whole layer as TOML, environment values as TOML reads them (for the rare setting
    /// that is an enum with data, which serde reads from a typed value).
    fn into_toml(self) -> toml::Value {
        match self {
            Self::File(v) => v,
            Self::Env(s) => guess(s),
            Self::Table(t) => {
                toml::Value::Table(t.into_iter().map(|(k, v)| (k, v.into_toml())).collect())
            }
        }
    }
}

/// An untyped value as TOML reads it (`5` a number, `true` a boolean, `[1, 2]` a list), or the
/// string itself when TOML does not read it (`250ms`, `postgres://...`).
fn guess(s: String) -> toml::Value {
    match s.parse::<toml::Value>() {
        Ok(toml::Value::Table(_)) | Err(_) => toml::Value::String(s),
        Ok(v) => v,
    }
}

/// `s` as TOML's `what`, or an error that says what was expected.
fn typed(s: &str, what: &str) -> Result<toml::Value, Error> {
    s.trim()
        .parse::<toml::Value>()
        .map_err(|_| Error::custom(format!("expected {what}, got `{s}`")))
}

impl IntoDeserializer<'_, Error> for Layer {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

macro_rules! scalar {
    ($($method:ident => $what:literal,)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            match self {
                Self::File(v) => v.$method(visitor),
                Self::Env(s) => typed(&s, $what)?.$method(visitor),
                table @ Self::Table(_) => table.deserialize_any(visitor),
            }
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Layer {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Self::File(v) => v.deserialize_any(visitor),
            Self::Env(s) => guess(s).deserialize_any(visitor),
            Self::Table(entries) => {
                let mut map = MapDeserializer::new(entries.into_iter());
                let value = visitor.visit_map(&mut map)?;
                map.end()?;
                Ok(value)
            }
        }
    }

    scalar! {
        deserialize_bool => "true or false",
        deserialize_i8 => "a number",
        deserialize_i16 => "a number",
        deserialize_i32 => "a number",
        deserialize_i64 => "a number",
        deserialize_i128 => "a number",
        deserialize_u8 => "a number",
        deserialize_u16 => "a number",
        deserialize_u32 => "a number",
        deserialize_u64 => "a number",
        deserialize_u128 => "a number",
        deserialize_f32 => "a number",
        deserialize_f64 => "a number",
        deserialize_seq => "a list such as [1, 2]",
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Self::Env(s) => visitor.visit_string(s),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Self::File(v) => v.deserialize_option(visitor),
            other => visitor.visit_some(other),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self {
            // A unit variant by name: `SHOP_QUEUE__SUBSCRIPTION__OVERFLOW=reject`.
            Self::Env(s) => visitor.visit_enum(IntoDeserializer::<Error>::into_deserializer(s)),
            other => other.into_toml().deserialize_enum(name, variants, visitor),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    forward_to_deserialize_any! {
        bytes byte_buf unit unit_struct tuple_struct map struct identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Settings {
        token: String,
        count: u32,
        ratio: f64,
        on: bool,
        #[serde(with = "levee::core::serde_duration")]
        wait: Duration,
        url: Option<String>,
        ids: Vec<u64>,
        inner: Inner,
        #[serde(default)]
        pause: Option<Pause>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
    enum Pause {
        Fixed {
            #[serde(with = "levee::core::serde_duration")]
            delay: Duration,
        },
        Doubling {
            #[serde(with = "levee::core::serde_duration")]
            base: Duration,
            factor: f64,
        },
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[serde(default)]
        name: String,
        #[serde(default)]
        level: Level,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Level {
        #[default]
        Low,
        High,
    }

    fn read(file: &str, env: &[(&str, &str)]) -> Result<Settings, Error> {
        read_over(DEFAULTS, file, env)
    }

    fn read_over(defaults: &str, file: &str, env: &[(&str, &str)]) -> Result<Settings, Error> {
        let defaults: toml::Table = toml::from_str(defaults).unwrap();
        let mut layer = Layer::file(toml::from_str(file).unwrap());
        for (path, value) in env {
            let path: Vec<String> = path.split('.').map(str::to_owned).collect();
            layer.set(&path, (*value).to_owned(), &defaults);
        }
        Settings::deserialize(layer)
    }

    /// No defaults: tables the file lacks start empty.
    const DEFAULTS: &str = "";

    const FILE: &str = r#"
        token = "file"
        count = 1
        ratio = 0.5
        on = false
        wait = "1s"
        ids = [1]
        [inner]
        name = "n"
    "#;

    #[test]
    fn environment_values_take_the_type_the_setting_wants() {
        let s = read(
            FILE,
            &[
                ("token", "123456"),
                ("count", "7"),
                ("ratio", "2"),
                ("on", "true"),
                ("wait", "250ms"),
                ("url", "postgres://u@127.0.0.1/db"),
                ("ids", "[3, 4]"),
                ("inner.name", "42"),
                ("inner.level", "high"),
            ],
        )
        .unwrap();
        assert_eq!(s.token, "123456", "a string setting stays a string");
        assert_eq!((s.count, s.ratio, s.on), (7, 2.0, true));
        assert_eq!(s.wait, Duration::from_millis(250));
        assert_eq!(s.url.as_deref(), Some("postgres://u@127.0.0.1/db"));
        assert_eq!(s.ids, [3, 4]);
        assert_eq!(s.inner, Inner { name: "42".into(), level: Level::High });
        // A duration may also be a number of milliseconds; a string keeps its spaces.
        let s = read(FILE, &[("wait", "1500"), ("token", " padded ")]).unwrap();
        assert_eq!((s.wait, s.token.as_str()), (Duration::from_millis(1500), " padded "));
        // Without the environment, the file's values.
        let s = read(FILE, &[]).unwrap();
        assert_eq!((s.token.as_str(), s.count, s.url), ("file", 1, None));
    }

    #[test]
    fn bad_environment_values_say_what_was_expected() {
        let err = read(FILE, &[("count", "many")]).unwrap_err().to_string();
        assert!(err.contains("expected a number, got `many`"), "{err}");
        let err = read(FILE, &[("on", "yes")]).unwrap_err().to_string();
        assert!(err.contains("true or false"), "{err}");
        let err = read(FILE, &[("wait", "soon")]).unwrap_err().to_string();
        assert!(err.contains("duration"), "{err}");
        let err = read(FILE, &[("inner.colour", "red")]).unwrap_err().to_string();
        assert!(err.contains("unknown field"), "{err}");
        let err = read(FILE, &[("inner.level", "extreme")]).unwrap_err().to_string();
        assert!(err.contains("unknown variant"), "{err}");
    }

    #[test]
    fn a_table_the_file_lacks_keeps_its_defaults_around_the_environment_value() {
        const DEFAULTS: &str = r#"
            [inner]
            name = "default"
            [pause]
            type = "doubling"
            base = "10ms"
            factor = 2.0
        "#;
        let file = FILE.replace("[inner]\n        name = \"n\"", "");
        let s =
            read_over(DEFAULTS, &file, &[("inner.level", "high"), ("pause.factor", "3")]).unwrap();
        assert_eq!(s.inner, Inner { name: "default".into(), level: Level::High });
        assert_eq!(s.pause, Some(Pause::Doubling { base: Duration::from_millis(10), factor: 3.0 }));
        // The file's table is the base where the file has one.
        let s = read_over(DEFAULTS, FILE, &[("inner.level", "high")]).unwrap();
        assert_eq!(s.inner.name, "n");
        // Another variant drops the fields of the default one, not those of the environment.
        let env = [("pause.delay", "1s"), ("pause.type", "fixed"), ("inner.level", "low")];
        let s = read_over(DEFAULTS, &file, &env).unwrap();
        assert_eq!(s.pause, Some(Pause::Fixed { delay: Duration::from_secs(1) }));
    }
}
