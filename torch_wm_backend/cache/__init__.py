"""The disk cache: built artifacts by content key (store), MetaSchedule tuning records per target
(records), and the versions that belong in every key (versions)."""
from .records import open_records, records_dir, records_lock, target_hash
from .store import ArtifactStore, CacheWarning, Entry, key_of
from .keys import cache_key, graph_hash, store_for
from .versions import source_hash, versions, weights_hash

__all__ = ["ArtifactStore", "CacheWarning", "Entry", "key_of", "open_records", "records_dir",
           "records_lock", "target_hash", "versions", "weights_hash", "cache_key", "graph_hash",
           "source_hash", "store_for"]
