//! Cases: ids are opaque bytes up to the limit; rules are separate namespaces.

use super::*;

/// Ids are opaque bytes up to [`MAX_ID_LEN`]: the longest ids (ASCII, and multi-byte text
/// of exactly that many bytes), ids that differ only in their last byte (a backend that
/// truncates, hashes weakly or pads would alias them), and ids with control and
/// bidirectional-override characters all round-trip in every rule. (Empty, oversized and
/// NUL-containing ids cannot reach a store: [`StoreId`] refuses them where they are made.)
pub async fn ids_of_any_bytes_up_to_the_limit_work(env: RevocationEnv) -> CaseResult {
    let RevocationEnv { store, clock, .. } = env;
    let store = &*store;
    let now = now_ms(&*clock);
    let until = now.saturating_add(LONG);
    let longest = "y".repeat(MAX_ID_LEN);
    let longest_sibling = format!("{}z", "y".repeat(MAX_ID_LEN - 1));
    // 2-byte characters: MAX_ID_LEN bytes, half as many characters.
    let multibyte = "é".repeat(MAX_ID_LEN / 2);
    let revoked = [
        longest.as_str(),
        multibyte.as_str(),
        "ctl-\u{1}\u{7f}\t\r",
        "bidi-\u{202e}\u{2066}",
        "nbsp-\u{a0}\u{85}",
    ];
    for name in revoked {
        let what = format!("an id of {} bytes ({:?}…)", name.len(), name.get(..12));
        store
            .revoke_token(&id(name), until)
            .await
            .step(&format!("revoke_token with {what}"))?;
        store
            .revoke_session(&id(name), until)
            .await
            .step(&format!("revoke_session with {what}"))?;
        store
            .revoke_subject(&id(name), now, until)
            .await
            .step(&format!("revoke_subject with {what}"))?;
    }
    for name in revoked {
        let why = "an unusual or maximal id round-trips";
        expect(store, &by_jti(name), BY_TOKEN, why).await?;
        expect(store, &by_sid(name), BY_SESSION, why).await?;
        expect(store, &by_sub(name, None), by_subject(now), why).await?;
    }
    let why = "an id differing from a revoked one only in its last byte is another id";
    expect(store, &by_jti(&longest_sibling), ACTIVE, why).await?;
    expect(store, &by_sid(&longest_sibling), ACTIVE, why).await?;
    expect(store, &by_sub(&longest_sibling, None), ACTIVE, why).await?;
    let near_ctl = "ctl-\u{1}\u{7f}\t";
    expect(
        store,
        &by_jti(near_ctl),
        ACTIVE,
        "a prefix of a revoked id is another id",
    )
    .await
}

/// Ids are opaque strings: separators, key-pattern and hash-tag characters, whitespace and
/// non-ASCII text do not alias other ids, and the three rules are separate namespaces.
pub async fn ids_are_opaque_and_rules_separate(env: RevocationEnv) -> CaseResult {
    let RevocationEnv { store, clock, .. } = env;
    let store = &*store;
    let now = now_ms(&*clock);
    let until = now.saturating_add(LONG);
    let revoked = [
        "a:b",
        "{tag}x",
        "with space",
        "ünïcødé",
        "*",
        "line\nbreak",
        "%s%n",
    ];
    for name in revoked {
        store
            .revoke_token(&id(name), until)
            .await
            .step(&format!("revoke_token({name:?})"))?;
    }
    for id in revoked {
        expect(store, &by_jti(id), BY_TOKEN, "an unusual id").await?;
    }
    for id in [
        "a", "b", "a:", ":b", "a:b:c", "{tag}", "tag", "with", "*x", "x", "%s",
    ] {
        expect(
            store,
            &by_jti(id),
            ACTIVE,
            "an id that only resembles a revoked one",
        )
        .await?;
    }

    store
        .revoke_token(&id("ns-1"), until)
        .await
        .step("revoke_token(ns-1)")?;
    store
        .revoke_session(&id("ns-2"), until)
        .await
        .step("revoke_session(ns-2)")?;
    store
        .revoke_subject(&id("ns-3"), until, until)
        .await
        .step("revoke_subject(ns-3)")?;
    let why = "rules are separate namespaces";
    expect(store, &by_sid("ns-1"), ACTIVE, why).await?;
    expect(store, &by_sub("ns-1", None), ACTIVE, why).await?;
    expect(store, &by_jti("ns-2"), ACTIVE, why).await?;
    expect(store, &by_sub("ns-2", None), ACTIVE, why).await?;
    expect(store, &by_jti("ns-3"), ACTIVE, why).await?;
    expect(store, &by_sid("ns-3"), ACTIVE, why).await
}
