"""The disk cache: built artifacts by content key (store), MetaSchedule tuning records per target
(records), and the versions that belong in every key (versions)."""
from .records import open_records, records_dir, records_lock, target_hash
from .store import ArtifactStore, CacheWarning, Entry, key_of
from .versions import versions, weights_hash

__all__ = ["ArtifactStore", "CacheWarning", "Entry", "key_of", "open_records", "records_dir",
           "records_lock", "target_hash", "versions", "weights_hash"]
