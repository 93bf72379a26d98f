//! The RocksDB store: the only module that imports `rocksdb`.

use std::path::{Path, PathBuf};

use rocksdb::{Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB};

use super::{Batch, Store, StoreError};

pub struct RocksStore {
    db: DB,
    path: PathBuf,
}

/// How much memory RocksDB may use (`[state]` of the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// The block cache, shared by data, index and filter blocks.
    pub block_cache: u64,
    /// One memtable; at most two exist (one filling, one being flushed).
    pub write_buffer: u64,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            block_cache: 64 << 20,
            write_buffer: 32 << 20,
        }
    }
}

impl Tuning {
    pub fn of(cfg: &crate::config::StateConfig) -> Tuning {
        Tuning {
            block_cache: cfg.block_cache,
            write_buffer: cfg.write_buffer,
        }
    }
}

impl RocksStore {
    pub fn open(path: &Path) -> Result<RocksStore, StoreError> {
        RocksStore::open_tuned(path, Tuning::default())
    }

    /// Opens (creating if missing) the store at `path` with its memory
    /// bounded by `tuning`: memtables at most 2 x `write_buffer`, every
    /// block read (index and filter blocks included) in one LRU cache of
    /// `block_cache` bytes.
    pub fn open_tuned(path: &Path, tuning: Tuning) -> Result<RocksStore, StoreError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        opts.set_max_background_jobs(2);
        opts.set_keep_log_file_num(3);
        let buffer = usize::try_from(tuning.write_buffer).unwrap_or(usize::MAX);
        opts.set_write_buffer_size(buffer);
        opts.set_max_write_buffer_number(2);
        // The level sizes follow the memtable, so a small memtable does not
        // leave level 1 oversized and compactions long.
        opts.set_max_bytes_for_level_base((tuning.write_buffer.saturating_mul(4)).max(64 << 20));
        let cache = rocksdb::Cache::new_lru_cache(
            usize::try_from(tuning.block_cache).unwrap_or(usize::MAX),
        );
        let mut table = rocksdb::BlockBasedOptions::default();
        table.set_block_cache(&cache);
        table.set_cache_index_and_filter_blocks(true);
        table.set_cache_index_and_filter_blocks_with_high_priority(true);
        table.set_pin_l0_filter_and_index_blocks_in_cache(true);
        // Filters and indexes in partitions under a pinned top level: a
        // lookup that misses (a ticket id seen for the first time) reads
        // one small filter partition per file, not a file's whole filter.
        table.set_bloom_filter(10.0, false);
        table.set_partition_filters(true);
        table.set_index_type(rocksdb::BlockBasedIndexType::TwoLevelIndexSearch);
        table.set_pin_top_level_index_and_filter(true);
        opts.set_block_based_table_factory(&table);
        let db = DB::open(&opts, path).map_err(|source| StoreError::Rocks {
            path: path.display().to_string(),
            source,
        })?;
        Ok(RocksStore {
            db,
            path: path.to_path_buf(),
        })
    }

    /// Opens an existing state for reading only: nothing can be written,
    /// and a process running on it meanwhile is not disturbed.
    pub fn open_read_only(path: &Path) -> Result<RocksStore, StoreError> {
        let opts = Options::default();
        let db =
            DB::open_for_read_only(&opts, path, false).map_err(|source| StoreError::Rocks {
                path: path.display().to_string(),
                source,
            })?;
        Ok(RocksStore {
            db,
            path: path.to_path_buf(),
        })
    }

    fn err(&self, source: rocksdb::Error) -> StoreError {
        StoreError::Rocks {
            path: self.path.display().to_string(),
            source,
        }
    }
}

/// A batch deleting this many ranges or more is flushed to a table file.
const FLUSH_AFTER_RANGES: usize = 64;

impl Store for RocksStore {
    fn write(&self, batch: Batch) -> Result<(), StoreError> {
        let mut wb = WriteBatch::default();
        for (from, to) in &batch.ranges {
            if from < to {
                wb.delete_range(from, to);
            }
        }
        for (k, v) in &batch.ops {
            match v {
                Some(v) => wb.put(k, v),
                None => wb.delete(k),
            }
        }
        // The WAL is synced with the batch: a batch that returned is durable
        // across kill -9 and power loss.
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(wb, &wo).map_err(|e| self.err(e))?;
        if batch.ranges.len() >= FLUSH_AFTER_RANGES {
            // Range deletions in the memtable are sorted again by every
            // iterator created; in a table file once. Retention deletes
            // one range per customer series a day: flush them there.
            self.db.flush().map_err(|e| self.err(e))?;
        }
        if let Some(d) = batch.durable {
            d.raise();
        }
        Ok(())
    }

    fn scan(&self, prefix: &[u8]) -> Result<super::Entries, StoreError> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator(IteratorMode::From(prefix, Direction::Forward))
        {
            let (k, v) = item.map_err(|e| self.err(e))?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get(key).map_err(|e| self.err(e))
    }

    fn for_each(&self, prefix: &[u8], f: &mut super::EntryFn<'_>) -> Result<(), StoreError> {
        // A restore reads everything once: its blocks would only push the
        // working set out of the cache.
        let mut ro = rocksdb::ReadOptions::default();
        ro.fill_cache(false);
        let mut it = self.db.raw_iterator_opt(ro);
        it.seek(prefix);
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if !k.starts_with(prefix) {
                break;
            }
            f(k, v)?;
            it.next();
        }
        it.status().map_err(|e| self.err(e))
    }

    fn for_each_from(
        &self,
        prefix: &[u8],
        from: &[u8],
        f: &mut super::RangeFn<'_>,
    ) -> Result<(), StoreError> {
        let mut it = self.db.raw_iterator();
        it.seek(if from > prefix { from } else { prefix });
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if !k.starts_with(prefix) || !f(k, v)? {
                break;
            }
            it.next();
        }
        it.status().map_err(|e| self.err(e))
    }

    fn for_each_ranges(
        &self,
        ranges: &[(Vec<u8>, Vec<u8>)],
        f: &mut super::RangesFn<'_>,
    ) -> Result<(), StoreError> {
        let mut it = self.db.raw_iterator();
        for (i, (prefix, from)) in ranges.iter().enumerate() {
            it.seek(if from > prefix { from } else { prefix });
            while let (Some(k), Some(v)) = (it.key(), it.value()) {
                if !k.starts_with(prefix) || !f(i, k, v)? {
                    break;
                }
                it.next();
            }
            it.status().map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    fn compact(&self) -> Result<(), StoreError> {
        self.db.compact_range::<&[u8], &[u8]>(None, None);
        Ok(())
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }
}
