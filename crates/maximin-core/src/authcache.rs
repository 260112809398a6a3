//! A cache of authenticated callers that is never stale: every entry carries the
//! store's auth epoch at the time it was read, and is used only while the store
//! still reports that epoch. Any revocation or plan change, by this process or
//! another one sharing the store (the CLI), changes the epoch and so misses the
//! cache on the very next request. Entries also expire after a minute, a
//! backstop that bounds any other staleness.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use time::OffsetDateTime;

use crate::Caller;

const MAX_AGE: time::Duration = time::Duration::seconds(60);
const MAX_ENTRIES: usize = 100_000;

struct Entry {
    caller: Arc<Caller>,
    epoch: u64,
    loaded_at: OffsetDateTime,
}

#[derive(Default)]
pub struct AuthCache {
    entries: RwLock<HashMap<String, Entry>>,
}

impl AuthCache {
    pub fn get(&self, hash: &str, epoch: u64, now: OffsetDateTime) -> Option<Arc<Caller>> {
        let map = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let e = map.get(hash)?;
        (e.epoch == epoch && now - e.loaded_at < MAX_AGE).then(|| e.caller.clone())
    }

    pub fn put(&self, hash: String, caller: Arc<Caller>, epoch: u64, now: OffsetDateTime) {
        let mut map = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, e| e.epoch == epoch && now - e.loaded_at < MAX_AGE);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        map.insert(
            hash,
            Entry {
                caller,
                epoch,
                loaded_at: now,
            },
        );
    }
}
