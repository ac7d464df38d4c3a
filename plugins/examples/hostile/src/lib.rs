//! A test fixture, not an example: the plugin misbehaves as its configuration's `mode`
//! says, so Rapport's tests can show the host contains each failure. It misbehaves only
//! for inputs that mention `misbehave` (a contact's tag, say) unless `always` is set, so it
//! passes the sample run at registration and fails later, as a real broken plugin would.
//!
//! `loop` spins forever, `grow` allocates without end, `trap` panics, `huge` returns an
//! enormous result, `flood` logs without end then answers, `out-of-range` scores 250,
//! `probe` reports what it could reach of the world (files, environment, clock) in its
//! reasons, `random` scores by a hash of the contact's id (a score that knows nothing, for
//! backtests to measure at chance), anything else scores 42.

use rapport_plugin_sdk::*;
use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(default)]
struct Config {
    mode: String,
    always: bool,
}

fn mode(input: &Input) -> Result<String, PluginError> {
    let config: Config = input.config()?;
    Ok(if config.always || input.data.contains("misbehave") {
        config.mode
    } else {
        String::new()
    })
}

struct Hostile;

impl Guest for Hostile {
    fn describe() -> Description {
        describe(
            "hostile",
            env!("CARGO_PKG_VERSION"),
            Capabilities::SCORE | Capabilities::NEXT_BEST_ACTIONS,
        )
    }

    fn score(input: Input) -> Result<ScoreResult, PluginError> {
        match mode(&input)?.as_str() {
            "loop" => {
                let mut x: u64 = input.data.len() as u64;
                loop {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            }
            "grow" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "trap" => panic!("this plugin traps on purpose"),
            "huge" => {
                let note = "x".repeat(1 << 10);
                let mut r = ScoreResult::new(1.0);
                for i in 0..10_000 {
                    r = r.reason(&format!("f{i}"), 0.0, &note);
                }
                Ok(r)
            }
            "flood" => {
                for i in 0..100_000 {
                    log(Level::Info, &format!("line {i} of a flood of log lines"));
                }
                Ok(ScoreResult::new(7.0))
            }
            "probe" => {
                let file = match std::fs::read_to_string("/etc/passwd") {
                    Ok(text) => format!("read {} bytes", text.len()),
                    Err(e) => format!("refused: {e}"),
                };
                let dir = match std::fs::read_dir(".") {
                    Ok(entries) => format!("listed {} entries", entries.count()),
                    Err(e) => format!("refused: {e}"),
                };
                let env = std::env::vars().count();
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let net = match std::net::TcpStream::connect("127.0.0.1:5432") {
                    Ok(_) => "connected".to_string(),
                    Err(e) => format!("refused: {e}"),
                };
                Ok(ScoreResult::new(0.0)
                    .reason("file", 0.0, &file)
                    .reason("dir", 0.0, &dir)
                    .reason("env", env as f64, "variables")
                    .reason("clock", now as f64, "seconds since 1970")
                    .reason("net", 0.0, &net))
            }
            "sleep" => {
                // A blocking WASI call (a monotonic-clock pollable, blocked on), far longer
                // than any call may take.
                std::thread::sleep(std::time::Duration::from_secs(10));
                Ok(ScoreResult::new(3.0))
            }
            "stdin" => {
                let mut line = String::new();
                let read = std::io::stdin().read_line(&mut line).unwrap_or(0);
                Ok(ScoreResult::new(read as f64))
            }
            "random" => {
                // FNV-1a of the id: the same contact always gets the same score, and the
                // scores spread evenly with nothing to do with the contact.
                let hash = input.contact_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
                });
                let score = (hash % 10_000) as f64 / 100.0;
                Ok(ScoreResult::new(score).reason("chance", score, "a hash of the contact's id"))
            }
            "out-of-range" => Ok(ScoreResult {
                score: 250.0,
                reasons: Vec::new(),
            }),
            _ => Ok(ScoreResult::new(42.0).reason("constant", 42.0, "always 42")),
        }
    }

    fn next_best_actions(input: Input) -> Result<Vec<Action>, PluginError> {
        match mode(&input)?.as_str() {
            "loop" => loop {
                std::hint::black_box(&input);
            },
            _ => Ok(vec![Action::new(ActionKind::Custom, 10, "the fixture always suggests this")]),
        }
    }
}

plugin!(Hostile);
