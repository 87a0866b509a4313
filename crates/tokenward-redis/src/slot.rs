//! Redis Cluster hash slots: which keys one script may touch together.
//!
//! A Redis Cluster refuses a script (or a multi-key command) whose keys are in different
//! hash slots (`CROSSSLOT`). Every script of this crate touches one slot — its keys share a
//! hash tag — and a call whose keys may be in several slots (the revocation check, the
//! Guard's per-request check, `families_of`) groups them by [`slot`] and sends one script or
//! pipeline per slot, concurrently. The slot layout is in `docs/architecture.md`
//! ("Redis Cluster: slot layout").

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

/// `items` grouped by the slot of their key (`key_of`), each group in the items' order, the
/// groups in the order of their first item. With `cluster` false, one group of everything
/// (a single Redis runs any script, whatever its keys' slots).
pub(crate) fn by_slot<T>(
    items: Vec<T>,
    cluster: bool,
    key_of: impl Fn(&T) -> &[u8],
) -> Vec<Vec<T>> {
    if !cluster {
        return if items.is_empty() {
            Vec::new()
        } else {
            vec![items]
        };
    }
    let mut groups: Vec<(u16, Vec<T>)> = Vec::new();
    for item in items {
        let s = slot(key_of(&item));
        match groups.iter_mut().find(|(g, _)| *g == s) {
            Some((_, group)) => group.push(item),
            None => groups.push((s, vec![item])),
        }
    }
    groups.into_iter().map(|(_, group)| group).collect()
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

    #[test]
    fn grouping() {
        let keys = vec!["{a}1", "{b}1", "{a}2", "{c}1", "{b}2"];
        let groups = by_slot(keys.clone(), true, |k| k.as_bytes());
        assert_eq!(
            groups,
            vec![vec!["{a}1", "{a}2"], vec!["{b}1", "{b}2"], vec!["{c}1"]]
        );
        assert_eq!(by_slot(keys.clone(), false, |k| k.as_bytes()), vec![keys]);
        assert!(by_slot(Vec::<&str>::new(), false, |k| k.as_bytes()).is_empty());
    }

    /// Every script and multi-key command of every store, with every key it sends: one
    /// slot each, whatever the prefix and ids (braces included); and the Guard's
    /// per-request check (the address's and the network's ban keys included), on a cluster,
    /// as parts of one slot each — one part under a hash-tagged prefix.
    #[test]
    fn every_script_touches_one_slot() {
        use crate::{
            RedisBackend, RedisConfig, RedisRateLimitStore, RedisRefreshStore, RedisRevocationStore,
        };
        use tokenward_core::{TokenRef, UnixTime};
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
        let exp = UnixTime::from_secs(2_000_000_000);
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
                // Rate limits: GCRA (and its refund) on one key; the ban scripts and
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
                // The Guard's per-request check: per part, one slot.
                for (jti, sid) in [(Some(id), Some(id)), (Some(id), None), (None, None)] {
                    let token = TokenRef::from_parts(jti, sid, Some(id), None, exp).unwrap();
                    let keys = rv.check_keys(&token);
                    let limit = rl.gcra_call(&LimitKey::new(format!("sub:{id}")).unwrap(), &one);
                    let ban = rl.ban_call(&LimitKey::new(format!("ip:{id}")).unwrap(), &quota);
                    let net = rl.ban_call(&LimitKey::new(format!("net:{id}")).unwrap(), &quota);
                    let mut all: Vec<String> = keys.iter().map(|(_, k)| k.clone()).collect();
                    all.extend([ban.failures.clone(), ban.ban.clone()]);
                    all.extend([net.failures.clone(), net.ban.clone(), limit.key.clone()]);
                    let parts = crate::stores::plan(
                        &keys,
                        Some(&ban.failures),
                        Some(&net.failures),
                        Some(&limit.key),
                        true,
                    );
                    let mut seen = 0;
                    for part in &parts {
                        let mut part_keys: Vec<String> =
                            part.revocation.iter().map(|&i| keys[i].1.clone()).collect();
                        if part.ban {
                            part_keys.extend([ban.failures.clone(), ban.ban.clone()]);
                        }
                        if part.network {
                            part_keys.extend([net.failures.clone(), net.ban.clone()]);
                        }
                        if part.limit {
                            part_keys.push(limit.key.clone());
                        }
                        seen += part_keys.len();
                        one_slot("per-request check part", &part_keys);
                    }
                    assert_eq!(seen, all.len(), "every key in one part");
                    if hash_tag(prefix.as_bytes()) != prefix.as_bytes() {
                        assert_eq!(parts.len(), 1, "{prefix}: a tagged prefix is one script");
                    }
                    let single = crate::stores::plan(
                        &keys,
                        Some(&ban.failures),
                        Some(&net.failures),
                        Some(&limit.key),
                        false,
                    );
                    assert_eq!(single.len(), 1, "one server: one script");
                }
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
