//! One call into a plugin: a fresh store and instance under the call's limits, the
//! locked-down WASI it may use, and the conversion of its answer into host types.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use wasmtime::StoreContextMut;
use wasmtime::component::{HasSelf, Resource, ResourceTable};
use wasmtime::{ResourceLimiter, Store, Trap};
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{
    HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView,
};

use crate::error::{Error, Limit};
use crate::limits::Limits;

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "plugin",
    });
}

use bindings::rapport;
use bindings::rapport::plugin::types as wit;
pub(crate) use bindings::{Plugin, PluginPre};

/// What a call hands the plugin for one contact.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Input {
    /// The contact's GraphQL id.
    pub contact_id: String,
    /// The input query's `data`, as JSON text.
    pub data: String,
    /// The plugin's configuration, as JSON text.
    pub config: String,
    /// The moment the data describes (RFC 3339); the plugin's clock shows this time.
    pub as_of: String,
}

/// One factor of a plugin's score.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    /// What the plugin looked at.
    pub feature: String,
    /// Points added (positive) or taken away.
    pub contribution: f64,
    /// A sentence for people.
    pub note: String,
}

/// A plugin's score, checked to lie in 0–100.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// 0–100.
    pub score: f64,
    /// Strongest first, as the plugin ordered them.
    pub reasons: Vec<Reason>,
}

/// What an action asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionKind {
    /// Send an email (`template`).
    SendEmail,
    /// Create a task (`title`, `due-in-days`).
    CreateTask,
    /// Call the contact (`title`, `due-in-days`).
    Call,
    /// Make an offer (`offer`).
    Offer,
    /// Enroll in a sequence (`sequence`).
    EnrollSequence,
    /// Anything else the plugin's users agree on.
    Custom,
}

impl ActionKind {
    /// The kind's name in the WIT (`create-task`).
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::SendEmail => "send-email",
            ActionKind::CreateTask => "create-task",
            ActionKind::Call => "call",
            ActionKind::Offer => "offer",
            ActionKind::EnrollSequence => "enroll-sequence",
            ActionKind::Custom => "custom",
        }
    }

    /// The kind named `s` in the WIT's spelling.
    pub fn parse(s: &str) -> Option<Self> {
        [
            ActionKind::SendEmail,
            ActionKind::CreateTask,
            ActionKind::Call,
            ActionKind::Offer,
            ActionKind::EnrollSequence,
            ActionKind::Custom,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// A recommended next step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Action {
    /// What to do.
    pub kind: ActionKind,
    /// The kind's parameters, in the plugin's order.
    pub params: Vec<(String, String)>,
    /// 0–100, higher first.
    pub priority: u32,
    /// Why.
    pub rationale: String,
}

/// Which exports a plugin implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// `score`.
    pub score: bool,
    /// `next-best-actions`.
    pub next_best_actions: bool,
}

/// What a plugin says about itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Description {
    /// Its name.
    pub name: String,
    /// Its own version string.
    pub version: String,
    /// The exports it implements.
    pub implements: Capabilities,
}

/// A line a plugin logged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    /// `debug`, `info`, `warn` or `error`; `stdout`/`stderr` for the WASI streams.
    pub level: String,
    /// The text.
    pub message: String,
}

/// A call's answer with what it cost.
#[derive(Clone, Debug, PartialEq)]
pub struct Call<T> {
    /// The answer.
    pub value: T,
    /// Fuel consumed, instantiation included.
    pub fuel_used: u64,
    /// Wall time, instantiation included.
    pub elapsed: Duration,
    /// Lines logged, within the log limit.
    pub log: Vec<LogLine>,
    /// Lines dropped once the log limit was reached.
    pub log_dropped: usize,
}

/// A call's answer or fault, with what it cost and what it logged either way: a failed
/// call's log is what its author needs to see (run records keep it, replay compares it).
#[derive(Debug)]
pub struct Attempt<T> {
    /// The answer, or why there is none.
    pub result: Result<T, Error>,
    /// Fuel consumed, instantiation included (0 when refused before running).
    pub fuel_used: u64,
    /// Wall time, instantiation included.
    pub elapsed: Duration,
    /// Lines logged, within the log limit (the WASI streams last).
    pub log: Vec<LogLine>,
    /// Lines dropped once the log limit was reached.
    pub log_dropped: usize,
}

impl<T> Attempt<T> {
    /// An attempt refused before the plugin ran.
    pub(crate) fn refused(error: Error) -> Self {
        Attempt {
            result: Err(error),
            fuel_used: 0,
            elapsed: Duration::ZERO,
            log: Vec::new(),
            log_dropped: 0,
        }
    }

    /// The answer with its costs, or the fault.
    pub fn into_call(self) -> Result<Call<T>, Error> {
        Ok(Call {
            value: self.result?,
            fuel_used: self.fuel_used,
            elapsed: self.elapsed,
            log: self.log,
            log_dropped: self.log_dropped,
        })
    }
}

/// What a store holds for one call.
pub struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    memory: MemoryLimiter,
    log: Log,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
    /// When the call's time is up: host calls that wait on the guest's behalf stop here.
    deadline: Instant,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl rapport::plugin::types::Host for State {}

impl rapport::plugin::host::Host for State {
    fn log(&mut self, level: rapport::plugin::host::Level, message: String) {
        use rapport::plugin::host::Level;
        let level = match level {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        self.log.push(level, message);
    }
}

/// What one log line costs besides its text (its level, its place in a `Vec`): so that
/// empty lines, which cost no text, still use the budget up.
const LOG_LINE_OVERHEAD: usize = 64;

/// Log lines up to a byte budget, each line costing its text and [`LOG_LINE_OVERHEAD`];
/// everything after is counted and dropped.
struct Log {
    lines: Vec<LogLine>,
    budget: usize,
    dropped: usize,
}

impl Log {
    fn push(&mut self, level: &str, message: String) {
        let cost = message.len().saturating_add(LOG_LINE_OVERHEAD);
        if cost <= self.budget {
            self.budget -= cost;
            self.lines.push(LogLine {
                level: level.to_string(),
                message,
            });
        } else {
            self.budget = 0;
            self.dropped = self.dropped.saturating_add(1);
        }
    }
}

/// Refuses linear memory (and tables) beyond the call's limit, and remembers that it did,
/// so the trap that follows is reported as the memory limit rather than a crash.
struct MemoryLimiter {
    max_bytes: usize,
    refused: Option<usize>,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.refused = Some(desired);
            wasmtime::bail!("memory limit reached");
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold function references; a million is far beyond any real program.
        Ok(desired <= 1_000_000)
    }
}

/// The plugin's clock: stopped at the input's `as-of`.
struct StoppedClock(Duration);

impl HostWallClock for StoppedClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        self.0
    }
}

impl HostMonotonicClock for StoppedClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// Adds what a plugin may import to `linker`.
pub(crate) fn link(linker: &mut wasmtime::component::Linker<State>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    bound_waits(linker)?;
    Plugin::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
}

/// The WASI interface whose functions wait: `pollable.block` and `poll`.
const POLL: &str = "wasi:io/poll@0.2.12";

/// Replaces WASI's waiting functions (a guest's `sleep` is `pollable.block`) with ones that
/// stop at the call's deadline. The epoch deadline interrupts guest code, but not the host
/// while it waits for the guest: a 100 ms plugin could hold its call, and a blocking-pool
/// thread, for as long as it asked to sleep.
fn bound_waits(linker: &mut wasmtime::component::Linker<State>) -> wasmtime::Result<()> {
    use wasmtime_wasi_io::bindings::wasi::io::poll as wasi_poll;
    linker.allow_shadowing(true);
    let mut poll = linker.instance(POLL)?;
    poll.func_wrap(
        "[method]pollable.block",
        |mut store: StoreContextMut<'_, State>, (pollable,): (Resource<DynPollable>,)| {
            let state = store.data_mut();
            until(
                state.deadline,
                wasi_poll::HostPollable::block(&mut state.table, pollable),
            )
        },
    )?;
    poll.func_wrap(
        "poll",
        |mut store: StoreContextMut<'_, State>, (list,): (Vec<Resource<DynPollable>>,)| {
            let state = store.data_mut();
            until(
                state.deadline,
                wasi_poll::Host::poll(&mut state.table, list),
            )
            .map(|r| (r,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// `wait` run to completion or until `deadline`, when the call ends as out of time.
fn until<T>(
    deadline: Instant,
    wait: impl Future<Output = wasmtime::Result<T>>,
) -> wasmtime::Result<T> {
    let remaining = deadline.saturating_duration_since(Instant::now());
    // The timer is made inside the runtime `in_tokio` enters (there may be none outside,
    // as in `rapport plugin test`).
    wasmtime_wasi::runtime::in_tokio(async move { tokio::time::timeout(remaining, wait).await })
        .unwrap_or_else(|_elapsed| Err(Trap::Interrupt.into()))
}

/// A store for one call: limits set, WASI locked down, the clock at `as_of` (seconds).
pub(crate) fn store(
    engine: &wasmtime::Engine,
    limits: &Limits,
    as_of_seconds: u64,
) -> Store<State> {
    let log_bytes = limits.log_bytes as usize;
    let stdout = MemoryOutputPipe::new(log_bytes);
    let stderr = MemoryOutputPipe::new(log_bytes);
    let wasi = WasiCtxBuilder::new()
        .stdout(stdout.clone())
        .stderr(stderr.clone())
        .wall_clock(StoppedClock(Duration::from_secs(as_of_seconds)))
        .monotonic_clock(StoppedClock(Duration::ZERO))
        .secure_random(wasmtime_wasi::Deterministic::new(vec![
            0x5a, 0x17, 0xc3, 0x88,
        ]))
        .insecure_random(wasmtime_wasi::Deterministic::new(vec![
            0x3c, 0xe1, 0x09, 0x72,
        ]))
        .insecure_random_seed(0x5eed)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build();
    let state = State {
        wasi,
        table: ResourceTable::new(),
        memory: MemoryLimiter {
            max_bytes: limits.memory_bytes as usize,
            refused: None,
        },
        log: Log {
            lines: Vec::new(),
            budget: log_bytes,
            dropped: 0,
        },
        stdout,
        stderr,
        deadline: Instant::now() + limits.time(),
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.memory);
    // What one call from the guest may hand the host (a log line, say) is bounded by the
    // call's own output and log limits, not wasmtime's default of 128 MiB; the margin
    // covers the encoding around the bytes, so a legitimate call is never cut short here
    // but reaches the limit checks that name the limit.
    store.set_hostcall_fuel(
        (limits.output_bytes.max(limits.log_bytes) as usize)
            .saturating_mul(2)
            .saturating_add(64 << 10),
    );
    store
        .set_fuel(limits.fuel)
        .expect("fuel is enabled on the engine");
    store.set_epoch_deadline(crate::runtime::deadline_ticks(limits.time()));
    store.epoch_deadline_trap();
    store
}

/// Runs `f` on a fresh instance in `store` and turns every failure into an [`Error`],
/// keeping the log and costs whether or not it answered.
pub(crate) fn call<T, R>(
    pre: &PluginPre<State>,
    mut store: Store<State>,
    limits: &Limits,
    f: impl FnOnce(&Plugin, &mut Store<State>) -> wasmtime::Result<R>,
    convert: impl FnOnce(R, &Limits) -> Result<T, Error>,
) -> Attempt<T> {
    let started = Instant::now();
    let outcome = pre
        .instantiate(&mut store)
        .and_then(|plugin| f(&plugin, &mut store));
    let elapsed = started.elapsed();
    let fuel_used = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
    let result = match outcome {
        Ok(raw) => convert(raw, limits),
        Err(e) => Err(classify(e, store.data(), limits)),
    };
    let state = store.into_data();
    let mut log = state.log;
    for (level, pipe) in [("stdout", &state.stdout), ("stderr", &state.stderr)] {
        let text = pipe.contents();
        if !text.is_empty() {
            log.push(level, String::from_utf8_lossy(&text).into_owned());
        }
    }
    Attempt {
        result,
        fuel_used,
        elapsed,
        log: log.lines,
        log_dropped: log.dropped,
    }
}

fn classify(e: wasmtime::Error, state: &State, limits: &Limits) -> Error {
    if let Some(asked) = state.memory.refused {
        return Error::Limit {
            limit: Limit::Memory,
            detail: format!("asked for {asked} bytes, {} allowed", limits.memory_bytes),
        };
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => Error::Limit {
            limit: Limit::Fuel,
            detail: format!("{} units", limits.fuel),
        },
        Some(Trap::Interrupt) => Error::Limit {
            limit: Limit::Time,
            detail: format!("{} ms", limits.time_ms),
        },
        Some(trap) => {
            // A panic's message went to stderr just before the trap.
            let stderr = String::from_utf8_lossy(&state.stderr.contents())
                .trim()
                .to_string();
            if stderr.is_empty() {
                Error::Trap(trap.to_string())
            } else {
                Error::Trap(format!("{trap}: {stderr}"))
            }
        }
        // wasmtime's hostcall fuel (set from the output and log limits in `store`) ran out:
        // the guest tried to hand the host more than its limits allow. The error type is
        // private to wasmtime, so it is known by its message.
        None if format!("{e:#}").contains("fuel allocated for hostcalls") => Error::Limit {
            limit: Limit::Output,
            detail: format!(
                "tried to hand the host more than {} bytes at once",
                limits.output_bytes.max(limits.log_bytes)
            ),
        },
        None => Error::Trap(format!("{e:#}")),
    }
}

fn check_output(bytes: usize, limits: &Limits) -> Result<(), Error> {
    if bytes as u64 > limits.output_bytes {
        return Err(Error::Limit {
            limit: Limit::Output,
            detail: format!("returned {bytes} bytes, {} allowed", limits.output_bytes),
        });
    }
    Ok(())
}

fn refused(e: wit::PluginError) -> Error {
    Error::Refused {
        code: e.code,
        message: e.message,
    }
}

/// Converts a WIT input.
pub(crate) fn to_wit(input: &Input) -> wit::Input {
    wit::Input {
        contact_id: input.contact_id.clone(),
        data: input.data.clone(),
        config: input.config.clone(),
        as_of: input.as_of.clone(),
    }
}

pub(crate) fn describe_result(d: wit::Description, limits: &Limits) -> Result<Description, Error> {
    check_output(d.name.len() + d.version.len(), limits)?;
    if d.name.trim().is_empty() || d.name.len() > 100 {
        return Err(Error::Malformed(
            "describe() must give a name of 1–100 characters".into(),
        ));
    }
    Ok(Description {
        name: d.name,
        version: d.version,
        implements: Capabilities {
            score: d.implements.contains(wit::Capabilities::SCORE),
            next_best_actions: d.implements.contains(wit::Capabilities::NEXT_BEST_ACTIONS),
        },
    })
}

pub(crate) fn score_result(
    r: Result<wit::ScoreResult, wit::PluginError>,
    limits: &Limits,
) -> Result<Score, Error> {
    let r = r.map_err(refused)?;
    let bytes = 8 + r
        .reasons
        .iter()
        .map(|x| x.feature.len() + x.note.len() + 8)
        .sum::<usize>();
    check_output(bytes, limits)?;
    if !(r.score.is_finite() && (0.0..=100.0).contains(&r.score)) {
        return Err(Error::Malformed(format!(
            "score {} is outside 0–100",
            r.score
        )));
    }
    if let Some(bad) = r.reasons.iter().find(|x| !x.contribution.is_finite()) {
        return Err(Error::Malformed(format!(
            "reason {:?} has a contribution that is not a number",
            bad.feature
        )));
    }
    Ok(Score {
        score: r.score,
        reasons: r
            .reasons
            .into_iter()
            .map(|x| Reason {
                feature: x.feature,
                contribution: x.contribution,
                note: x.note,
            })
            .collect(),
    })
}

pub(crate) fn actions_result(
    r: Result<Vec<wit::Action>, wit::PluginError>,
    limits: &Limits,
) -> Result<Vec<Action>, Error> {
    let r = r.map_err(refused)?;
    let bytes = r
        .iter()
        .map(|a| {
            16 + a.rationale.len()
                + a.params
                    .iter()
                    .map(|(k, v)| k.len() + v.len())
                    .sum::<usize>()
        })
        .sum::<usize>();
    check_output(bytes, limits)?;
    r.into_iter()
        .map(|a| {
            if a.priority > 100 {
                return Err(Error::Malformed(format!(
                    "action priority {} is outside 0–100",
                    a.priority
                )));
            }
            if a.params.iter().any(|(k, _)| k.trim().is_empty()) {
                return Err(Error::Malformed(
                    "an action parameter has an empty name".into(),
                ));
            }
            Ok(Action {
                kind: match a.kind {
                    wit::ActionKind::SendEmail => ActionKind::SendEmail,
                    wit::ActionKind::CreateTask => ActionKind::CreateTask,
                    wit::ActionKind::Call => ActionKind::Call,
                    wit::ActionKind::Offer => ActionKind::Offer,
                    wit::ActionKind::EnrollSequence => ActionKind::EnrollSequence,
                    wit::ActionKind::Custom => ActionKind::Custom,
                },
                params: a.params,
                priority: a.priority,
                rationale: a.rationale,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_log_lines_use_the_budget_up() {
        let mut log = Log {
            lines: Vec::new(),
            budget: 1 << 10,
            dropped: 0,
        };
        for _ in 0..1_000_000 {
            log.push("info", String::new());
        }
        assert_eq!(log.lines.len(), (1 << 10) / LOG_LINE_OVERHEAD);
        assert_eq!(log.dropped, 1_000_000 - log.lines.len());
    }
}
