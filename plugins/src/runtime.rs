//! The shared engine, compiled-code caching, and loaded plugins.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine};

use crate::error::{Error, Limit};
use crate::limits::Limits;
use crate::sandbox::{self, Action, Attempt, Call, Description, Input, PluginPre, Score, State};

/// How often the engine's epoch advances: the granularity of wall-time limits.
const TICK: Duration = Duration::from_millis(1);

/// Epoch ticks a call of `time` may run for.
pub(crate) fn deadline_ticks(time: Duration) -> u64 {
    (time.as_micros() / TICK.as_micros()).max(1) as u64 + 1
}

/// Instances the pool holds at once (calls running at the same time, across plugins).
const POOLED_INSTANCES: u32 = 128;

/// The engine's configuration: fuel and epochs for the limits, and (with `pooled`) a pool
/// of pre-reserved instance slots, so a call's fresh instance costs a few microseconds
/// instead of mapping new memory.
fn config(pooled: bool) -> Config {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .consume_fuel(true)
        .epoch_interruption(true)
        .max_wasm_stack(1 << 20);
    if pooled {
        let mut pool = wasmtime::PoolingAllocationConfig::new();
        pool.total_component_instances(POOLED_INSTANCES)
            .total_core_instances(POOLED_INSTANCES * 8)
            .total_memories(POOLED_INSTANCES * 2)
            .total_tables(POOLED_INSTANCES * 4)
            .total_stacks(POOLED_INSTANCES)
            // Interpreters compiled to components (CPython) bring many core modules,
            // large tables and big instances.
            .max_core_instances_per_component(64)
            .max_memories_per_component(8)
            .max_tables_per_component(32)
            .table_elements(100_000)
            .max_core_instance_size(8 << 20)
            .max_component_instance_size(8 << 20)
            .max_memory_size(crate::limits::CEILING.memory_bytes as usize)
            // A freed slot is reset in place, only the pages the call dirtied (found with
            // Linux's PAGEMAP_SCAN where the kernel has it), instead of unmapping memory
            // and taking page faults and TLB shootdowns on the next call.
            .pagemap_scan(wasmtime::Enabled::Auto)
            // Warm slots keep their dirtied pages; bound how many, and so the memory held.
            .max_unused_warm_slots(16)
            .linear_memory_keep_resident(8 << 20)
            .table_keep_resident(1 << 20);
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        // Each memory slot reserves address space for the largest memory allowed, not the
        // default 4 GiB: the whole pool then reserves about 260 GiB of address space
        // (mapped inaccessible; nothing is committed until used).
        config.memory_reservation(crate::limits::CEILING.memory_bytes);
    }
    config
}

/// The plugin host: one wasmtime engine shared by every plugin and call.
///
/// Cheap to clone. Compiled components are kept in memory by content hash and, with a
/// cache directory, on disk, so a restarted process loads them without compiling.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    linker: Linker<State>,
    cache_dir: Option<PathBuf>,
    loaded: Mutex<HashMap<String, Loaded>>,
    compiling: Mutex<()>,
    stop_ticker: Arc<AtomicBool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

/// A compiled plugin, ready to instantiate. Cheap to clone.
#[derive(Clone)]
pub struct Loaded {
    pre: Arc<PluginPre<State>>,
    engine: Engine,
    /// SHA-256 of the component's bytes, in hex.
    pub sha256: String,
}

impl Runtime {
    /// A host whose compiled components are cached in `cache_dir` (created when missing),
    /// or only in memory without one.
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Runtime, Error> {
        let engine = Engine::new(&config(true))
            .or_else(|e| {
                // Reserving the pool's address space can fail where virtual memory is
                // limited; plugins still run, each instance allocated on demand.
                tracing::warn!(error = %e, "no instance pool; allocating plugin instances on demand");
                Engine::new(&config(false))
            })
            .map_err(|e| Error::Cache(format!("engine: {e}")))?;
        let mut linker = Linker::new(&engine);
        sandbox::link(&mut linker).map_err(|e| Error::Cache(format!("linker: {e}")))?;
        if let Some(dir) = &cache_dir {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::Cache(format!("cannot create {}: {e}", dir.display())))?;
        }
        let stop_ticker = Arc::new(AtomicBool::new(false));
        let weak = engine.weak();
        let stop = stop_ticker.clone();
        std::thread::Builder::new()
            .name("plugin-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| Error::Cache(format!("epoch thread: {e}")))?;
        Ok(Runtime {
            inner: Arc::new(Inner {
                engine,
                linker,
                cache_dir,
                loaded: Mutex::new(HashMap::new()),
                compiling: Mutex::new(()),
                stop_ticker,
            }),
        })
    }

    /// Compiles (or finds already compiled) the component in `wasm` and checks that it
    /// targets the plugin world with imports the host provides.
    pub fn load(&self, wasm: &[u8]) -> Result<Loaded, Error> {
        let sha256 = sha256_hex(wasm);
        if let Some(found) = self.memo().get(&sha256) {
            return Ok(found.clone());
        }
        let component = self.compile(wasm, &sha256)?;
        let pre = self
            .inner
            .linker
            .instantiate_pre(&component)
            .map_err(|e| Error::MissingImport(format!("{e:#}")))?;
        let pre = PluginPre::new(pre).map_err(|e| Error::WrongWorld(format!("{e:#}")))?;
        let loaded = Loaded {
            pre: Arc::new(pre),
            engine: self.inner.engine.clone(),
            sha256: sha256.clone(),
        };
        self.memo().insert(sha256, loaded.clone());
        Ok(loaded)
    }

    /// The plugin with content hash `sha256`, if this process has loaded it already.
    pub fn cached(&self, sha256: &str) -> Option<Loaded> {
        self.memo().get(sha256).cloned()
    }

    fn memo(&self) -> std::sync::MutexGuard<'_, HashMap<String, Loaded>> {
        self.inner.loaded.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The component from the disk cache, or compiled and written there.
    fn compile(&self, wasm: &[u8], sha256: &str) -> Result<Component, Error> {
        let engine = &self.inner.engine;
        let cached = self.inner.cache_dir.as_ref().map(|dir| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            engine.precompile_compatibility_hash().hash(&mut h);
            dir.join(format!("{sha256}-{:016x}.cwasm", h.finish()))
        });
        if let Some(path) = &cached
            && let Ok(file) = std::fs::read(path)
        {
            // Deserializing trusts the bytes to be what `serialize` wrote: an entry whose
            // trailing SHA-256 does not match its content (truncated, altered) is never
            // handed to it.
            match verified(&file) {
                Some(artifact) => {
                    // SAFETY: the bytes were written by `Component::serialize` of an engine
                    // with the same compatibility hash (it is in the name) and are intact
                    // (their digest matches).
                    match unsafe { Component::deserialize(engine, artifact) } {
                        Ok(component) => {
                            tracing::debug!(path = %path.display(), "plugin loaded from the compile cache");
                            return Ok(component);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "unusable cache entry; compiling again")
                        }
                    }
                }
                None => tracing::warn!(
                    path = %path.display(),
                    "a compile cache entry does not match its digest; compiling again"
                ),
            }
        }
        let binary = crate::admission::admit(wasm)?;
        // One compilation at a time: Cranelift already uses every core for one, and
        // concurrent uploads would multiply the memory it takes.
        let _one_at_a_time = self
            .inner
            .compiling
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let component =
            Component::new(engine, &binary).map_err(|e| Error::NotAComponent(format!("{e:#}")))?;
        if let Some(path) = &cached {
            let mut bytes = component
                .serialize()
                .map_err(|e| Error::Cache(format!("serialize: {e}")))?;
            let digest = Sha256::digest(&bytes);
            bytes.extend_from_slice(&digest);
            // Unique per writer: tests in one process may compile the same component at once.
            let unique = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let tmp = path.with_extension(format!("tmp{}-{unique}", std::process::id()));
            std::fs::write(&tmp, bytes)
                .and_then(|()| std::fs::rename(&tmp, path))
                .map_err(|e| Error::Cache(format!("cannot write {}: {e}", path.display())))?;
        }
        Ok(component)
    }
}

/// The artifact of a cache entry (the serialized component followed by its SHA-256), if
/// the digest matches.
fn verified(file: &[u8]) -> Option<&[u8]> {
    let split = file.len().checked_sub(32)?;
    let (artifact, digest) = file.split_at(split);
    (Sha256::digest(artifact)[..] == *digest).then_some(artifact)
}

/// SHA-256 of `bytes` in hex: the key components are known by.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Loaded {
    /// `describe()` under `limits`.
    pub fn describe(&self, limits: &Limits) -> Result<Call<Description>, Error> {
        let store = sandbox::store(&self.engine, limits, 0);
        sandbox::call(
            &self.pre,
            store,
            limits,
            |p, s| p.call_describe(s),
            sandbox::describe_result,
        )
        .into_call()
    }

    /// `score(input)` under `limits`.
    pub fn score(&self, input: &Input, limits: &Limits) -> Result<Call<Score>, Error> {
        self.attempt_score(input, limits).into_call()
    }

    /// `score(input)` under `limits`, with the log and costs of a failed call too.
    pub fn attempt_score(&self, input: &Input, limits: &Limits) -> Attempt<Score> {
        let store = match self.prepare(input, limits) {
            Ok(store) => store,
            Err(e) => return Attempt::refused(e),
        };
        let wit = sandbox::to_wit(input);
        sandbox::call(
            &self.pre,
            store,
            limits,
            |p, s| p.call_score(s, &wit),
            sandbox::score_result,
        )
    }

    /// `next-best-actions(input)` under `limits`.
    pub fn next_best_actions(
        &self,
        input: &Input,
        limits: &Limits,
    ) -> Result<Call<Vec<Action>>, Error> {
        self.attempt_next_best_actions(input, limits).into_call()
    }

    /// `next-best-actions(input)` under `limits`, with the log and costs of a failed call
    /// too.
    pub fn attempt_next_best_actions(
        &self,
        input: &Input,
        limits: &Limits,
    ) -> Attempt<Vec<Action>> {
        let store = match self.prepare(input, limits) {
            Ok(store) => store,
            Err(e) => return Attempt::refused(e),
        };
        let wit = sandbox::to_wit(input);
        sandbox::call(
            &self.pre,
            store,
            limits,
            |p, s| p.call_next_best_actions(s, &wit),
            sandbox::actions_result,
        )
    }

    fn prepare(&self, input: &Input, limits: &Limits) -> Result<wasmtime::Store<State>, Error> {
        let size = input.data.len() + input.config.len() + input.contact_id.len();
        if size as u64 > limits.input_bytes {
            return Err(Error::Limit {
                limit: Limit::Input,
                detail: format!("{size} bytes, {} allowed", limits.input_bytes),
            });
        }
        let as_of = chrono::DateTime::parse_from_rfc3339(&input.as_of)
            .map(|t| t.timestamp().max(0) as u64)
            .unwrap_or(0);
        Ok(sandbox::store(&self.engine, limits, as_of))
    }
}
