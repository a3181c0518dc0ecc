//! The end of a run's command, shared by `loadgen` and `soak`: the Ctrl-C watcher that asks a
//! run to stop, and the output (the text to stdout, or to stderr when the JSON goes to
//! stdout with `--json -`; the JSON to its file).

use std::path::PathBuf;

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A stop signal that turns true at Ctrl-C (after printing `announce` on stderr); abort the
/// handle once the run is over.
pub(crate) fn stop_on_ctrl_c(announce: &'static str) -> (watch::Receiver<bool>, JoinHandle<()>) {
    let (tx, rx) = watch::channel(false);
    let watcher = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("{announce}");
            let _ = tx.send(true);
        }
    });
    (rx, watcher)
}

/// Prints `text` and writes `value` as JSON to `json` (`-`: stdout, the text then going to
/// stderr). `command` and `what` name the value in errors (`loadgen`, `report`). False, said
/// on stderr, when the JSON could not be written.
pub(crate) fn publish(
    command: &str,
    what: &str,
    text: &str,
    value: &impl Serialize,
    json: Option<PathBuf>,
) -> bool {
    let to_stdout = json.as_deref().is_some_and(|p| p.as_os_str() == "-");
    if to_stdout {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
    let Some(path) = json else { return true };
    let text = match serde_json::to_string_pretty(value) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("{command}: {what} as JSON: {e}");
            return false;
        }
    };
    if to_stdout {
        println!("{text}");
    } else if let Err(e) = std::fs::write(&path, text) {
        eprintln!("{command}: cannot write {}: {e}", path.display());
        return false;
    }
    true
}
