//! The steps of the model-based case and how proptest generates them.

use proptest::prelude::*;

/// Which token of a family a rotation presents.
#[derive(Debug, Clone, Copy)]
pub(super) enum Which {
    Current,
    Previous,
    /// `n` tokens before the previous one (or the oldest).
    Older(u8),
    /// Well-formed, naming the family, never issued.
    Forged,
    /// Well-formed, naming a family that does not exist.
    UnknownFamily,
    Malformed,
}

#[derive(Debug, Clone)]
pub(super) enum Op {
    Login {
        sub: u8,
        /// Its access token outlives the engine's `max_access_token_lifetime`.
        long: bool,
    },
    /// A login whose family has a short absolute lifetime (the one expiry a real clock
    /// sees).
    LoginShortLived {
        sub: u8,
    },
    Rotate {
        fam: u8,
        which: Which,
        key: Option<u8>,
        /// Through an engine with a zero grace window: as if the window had passed.
        late: bool,
        /// The access token minted outlives the engine's `max_access_token_lifetime`.
        long: bool,
    },
    /// The store is down: a transient error, nothing changes.
    RotateDuringOutage {
        fam: u8,
        which: Which,
    },
    /// The store applies the rotation, the reply is lost: a transient error.
    RotateLosingReply {
        fam: u8,
        which: Which,
    },
    RevokeFamily {
        fam: u8,
    },
    RevokeUnknownFamily,
    RevokeSubject {
        sub: u8,
    },
    Families {
        sub: u8,
    },
    CheckSession {
        fam: u8,
    },
    Advance(u8),
}

fn which() -> impl Strategy<Value = Which> {
    prop_oneof![
        6 => Just(Which::Current),
        4 => Just(Which::Previous),
        2 => (0u8..3).prop_map(Which::Older),
        1 => Just(Which::Forged),
        1 => Just(Which::UnknownFamily),
        1 => Just(Which::Malformed),
    ]
}

/// The steps. `scale` multiplies every weight but that of short-lived logins (on a real
/// clock those cost a sleep when time passes).
pub(super) fn op(scale: u32) -> impl Strategy<Value = Op> {
    let fam = 0u8..4;
    let long = || proptest::bool::weighted(0.2);
    prop_oneof![
        3 * scale => (0u8..2, long()).prop_map(|(sub, long)| Op::Login { sub, long }),
        1 => (0u8..2).prop_map(|sub| Op::LoginShortLived { sub }),
        12 * scale => (
            fam.clone(),
            which(),
            proptest::option::weighted(0.3, 0u8..2),
            proptest::bool::weighted(0.15),
            long(),
        )
            .prop_map(|(fam, which, key, late, long)| Op::Rotate { fam, which, key, late, long }),
        scale => (fam.clone(), which()).prop_map(|(fam, which)| Op::RotateDuringOutage { fam, which }),
        scale => (fam.clone(), which()).prop_map(|(fam, which)| Op::RotateLosingReply { fam, which }),
        scale => fam.clone().prop_map(|fam| Op::RevokeFamily { fam }),
        scale => Just(Op::RevokeUnknownFamily),
        scale => (0u8..2).prop_map(|sub| Op::RevokeSubject { sub }),
        scale => (0u8..2).prop_map(|sub| Op::Families { sub }),
        2 * scale => fam.prop_map(|fam| Op::CheckSession { fam }),
        3 * scale => (1u8..=9).prop_map(Op::Advance),
    ]
}
