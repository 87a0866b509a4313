//! Redis Cluster hash slots: which keys one script may touch together.
//!
//! A Redis Cluster refuses a script (or a multi-key command) whose keys are in different
//! hash slots (`CROSSSLOT`). Every script of this crate touches one slot — its keys share a
//! hash tag — and declares every key it touches.

/// The number of hash slots of a Redis Cluster.
pub(crate) const SLOTS: u16 = 16384;

/// The part of `key` Redis Cluster hashes: the bytes between the first `{` and the first `}`
/// after it, if there are any; else the whole key (the Redis Cluster specification's
/// `HASH_SLOT`, "hash tags").
pub(crate) fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{')
        && let Some(rest) = key.get(open + 1..)
        && let Some(len) = rest.iter().position(|&b| b == b'}')
        && len > 0
        && let Some(tag) = rest.get(..len)
    {
        return tag;
    }
    key
}

/// The hash slot of `key`: CRC16 (XMODEM: polynomial 0x1021, initial value 0) of its
/// [`hash_tag`], modulo [`SLOTS`] — as Redis computes it (`CLUSTER KEYSLOT`).
pub(crate) fn slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key)) % SLOTS
}

/// CRC16-CCITT (XMODEM), bit by bit: a few keys per call, no table needed.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_as_redis_computes_them() {
        // The Redis Cluster specification's test vector, and `CLUSTER KEYSLOT` answers.
        assert_eq!(crc16(b"123456789"), 0x31c3);
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"bar"), 5061);
        assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        assert_eq!(slot(b""), 0);
    }

    #[test]
    fn hash_tags() {
        assert_eq!(hash_tag(b"{tw}:rv:j:a"), b"tw");
        assert_eq!(hash_tag(b"tw:rl:{sub:a}:g"), b"sub:a");
        assert_eq!(hash_tag(b"{}:rl:{sub}:g"), b"{}:rl:{sub}:g");
        assert_eq!(hash_tag(b"foo{}{bar}"), b"foo{}{bar}");
        assert_eq!(hash_tag(b"foo{{bar}}zap"), b"{bar");
        assert_eq!(hash_tag(b"foo{bar}{zap}"), b"bar");
        assert_eq!(hash_tag(b"plain"), b"plain");
        assert_eq!(hash_tag(b"open{"), b"open{");
    }

    /// Every script and multi-key command of every store, with every key it sends: one
    /// slot each, whatever the prefix and ids (braces included).
    #[test]
    fn every_script_touches_one_slot() {
        use crate::{
            RedisBackend, RedisConfig, RedisRateLimitStore, RedisRefreshStore, RedisRevocationStore,
        };
        use tokenward_ratelimit::{BanQuota, GcraCharge, GcraQuota, LimitKey};
        use tokenward_refresh::FamilyId;

        fn one_slot(what: &str, keys: &[String]) {
            let slots: Vec<u16> = keys.iter().map(|k| slot(k.as_bytes())).collect();
            assert!(
                slots.windows(2).all(|w| w[0] == w[1]),
                "{what}: {keys:?} are in slots {slots:?}"
            );
        }

        let ids = ["alice", "{evil}", "}x{", "a{b}c", "{}", "fam_81", "7b617d"];
        let families = ["AAAAAAAAAAAAAAAAAAAAAA", "zzzz-_zzzzzzzzzzzzzzzw"];
        let one = GcraCharge::single(GcraQuota::per_minute(std::num::NonZeroU32::MIN));
        let quota = BanQuota::fail2ban_default();
        for prefix in ["tokenward:", "{tw}:", "app:{x}:", "a{"] {
            let backend = RedisBackend::new(&RedisConfig::default().key_prefix(prefix)).unwrap();
            let rv = RedisRevocationStore::new(backend.clone());
            let rl = RedisRateLimitStore::new(backend.clone());
            let rf = RedisRefreshStore::new(backend);
            for id in ids {
                // Revocation: each revoke script has one key.
                for key in [rv.token_key(id), rv.session_key(id), rv.subject_key(id)] {
                    one_slot("revoke", &[key]);
                }
                // Rate limits: GCRA on one key; the ban scripts and
                // lift_ban's DEL on the failures and the marker.
                let key = LimitKey::new(id).unwrap();
                one_slot("gcra", &[rl.gcra_call(&key, &one).key]);
                let ban = rl.ban_call(&key, &quota);
                one_slot(
                    "record_failure / ban_status / lift_ban",
                    &[ban.failures, ban.ban],
                );
                // Refresh: the subject index alone (create's first script, families_of's
                // read, revoke's ZREM).
                one_slot("index", &[rf.subject_key(id)]);
            }
            for family in families {
                let family = FamilyId::parse(family).unwrap();
                // create's second script, get, record_access_exp, record_response: the
                // family; rotate and revoke: the family and its history.
                one_slot(
                    "rotate / revoke",
                    &[rf.family_key(&family), rf.history_key(&family)],
                );
            }
        }
    }
}
