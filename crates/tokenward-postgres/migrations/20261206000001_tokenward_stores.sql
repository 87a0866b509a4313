-- tokenward's durable stores. Run by `PgStores::migrate` with `search_path` set to the
-- store's schema (`tokenward` by default), so every object below lands in that schema and
-- the functions keep it (`SET search_path FROM CURRENT`) whatever the caller's path is.
-- Times are `timestamptz` (microseconds); tokenward rounds instants it is given *up* to the
-- microsecond, so nothing is revoked or kept for less than asked. Every expiry is decided by
-- the database's clock, never the application's. Documented in docs/operations.md.

-- Instants cross the wire as microseconds since the Unix epoch (`bigint`): exact both ways.
CREATE FUNCTION us_ts(us bigint) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT 'epoch'::timestamptz + us * interval '1 microsecond' $$;

CREATE FUNCTION ts_us(t timestamptz) RETURNS bigint
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT extract(epoch FROM date_trunc('second', t))::bigint * 1000000
               + (extract(microseconds FROM t)::bigint % 1000000) $$;

-- Revocations: one row per rule and id.
--   rule 1: a token (`jti`), 2: a session (`sid`), 3: a subject (`sub`, tokens with
--   `iat < before`), 4: a subject's tokens without a `sid` (`iat < before`).
--   id: an opaque store id (issuer-scoped by the caller), compared byte for byte.
--   until: the entry matches while `now() < until`; a row past it is never answered and is
--   deleted by the bounded purge (a few per write, and the store's background task).
CREATE TABLE revocations (
    rule   smallint NOT NULL CHECK (rule BETWEEN 1 AND 4),
    id     text COLLATE "C" NOT NULL,
    until  timestamptz NOT NULL,
    before timestamptz,
    PRIMARY KEY (rule, id),
    CHECK ((rule >= 3) = (before IS NOT NULL))
);
-- The purge walks expired rows by `until`.
CREATE INDEX revocations_until ON revocations (until);

-- Refresh-token families: one row per family (the access tokens' `sid`). Only hashes and
-- sealed blobs, never a token. A revoked family is a tombstone: its hashes, sealed successor
-- and idempotency record are cleared and it stays until `expires_at` (the earlier of its
-- expiry and its revocation + `retention`).
CREATE TABLE refresh_families (
    id               text COLLATE "C" PRIMARY KEY,
    sub              text COLLATE "C" NOT NULL,
    created          timestamptz NOT NULL,
    last_used        timestamptz NOT NULL,
    absolute_exp     timestamptz NOT NULL,
    idle             interval NOT NULL,
    -- min(absolute_exp, last_used + idle) while live; the tombstone's end once revoked.
    expires_at       timestamptz NOT NULL,
    -- The latest `exp` of an access token minted in the family (only grows).
    access_exp       timestamptz NOT NULL,
    retention        interval NOT NULL,
    revoked          boolean NOT NULL DEFAULT false,
    current_hash     bytea CHECK (length(current_hash) = 32),
    previous_hash    bytea CHECK (length(previous_hash) = 32),
    rotated_at       timestamptz,
    sealed_successor bytea,
    idem_key_hash    bytea CHECK (length(idem_key_hash) = 32),
    idem_response    bytea,
    -- How many hashes have joined the history (numbers its rows).
    generation       bigint NOT NULL DEFAULT 0,
    CHECK (revoked OR current_hash IS NOT NULL),
    CHECK ((previous_hash IS NULL) = (rotated_at IS NULL)),
    CHECK (idem_response IS NULL OR idem_key_hash IS NOT NULL)
);
-- `families_of`: a subject's live families, oldest first.
CREATE INDEX refresh_families_sub ON refresh_families (sub, created, id) WHERE NOT revoked;
-- The purge walks expired families by `expires_at`.
CREATE INDEX refresh_families_expires ON refresh_families (expires_at);

-- Rotated hashes older than the previous one: presenting one is reuse. Capped per family
-- (the newest `cap` kept), deleted with the family or its revocation.
CREATE TABLE refresh_history (
    family_id text COLLATE "C" NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    seq       bigint NOT NULL,
    hash      bytea NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (family_id, hash)
);
CREATE INDEX refresh_history_seq ON refresh_history (family_id, seq);

-- Equality of two hashes in time independent of where they differ.
CREATE FUNCTION ct_eq(a bytea, b bytea) RETURNS boolean
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    AS $$
DECLARE
    d integer := 0;
BEGIN
    IF a IS NULL OR b IS NULL OR length(a) <> length(b) THEN
        RETURN false;
    END IF;
    FOR i IN 0 .. length(a) - 1 LOOP
        d := d | (get_byte(a, i) # get_byte(b, i));
    END LOOP;
    RETURN d = 0;
END
$$;

-- Creates a family at the database's now; false if a live family has the id. Deletes up to
-- `purge` expired families (not this id) on the way: the store cleans up as it is used.
CREATE FUNCTION family_create(
    p_id text, p_sub text, p_hash bytea, p_absolute_us bigint, p_idle_us bigint,
    p_access_exp_us bigint, p_retention_us bigint, p_purge integer
) RETURNS boolean
    LANGUAGE plpgsql SET search_path FROM CURRENT
    AS $$
DECLARE
    v_now timestamptz := clock_timestamp();
    v_idle interval := p_idle_us * interval '1 microsecond';
    v_abs timestamptz := v_now + p_absolute_us * interval '1 microsecond';
BEGIN
    DELETE FROM refresh_families WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM refresh_families
        WHERE expires_at <= v_now AND id <> p_id
        ORDER BY expires_at LIMIT p_purge FOR UPDATE SKIP LOCKED));
    DELETE FROM refresh_families WHERE id = p_id AND expires_at <= v_now;
    INSERT INTO refresh_families (id, sub, created, last_used, absolute_exp, idle, expires_at,
                                  access_exp, retention, current_hash)
    VALUES (p_id, p_sub, v_now, v_now, v_abs, v_idle, least(v_abs, v_now + v_idle),
            us_ts(p_access_exp_us), p_retention_us * interval '1 microsecond', p_hash)
    ON CONFLICT (id) DO NOTHING;
    RETURN FOUND;
END
$$;

-- Makes a locked, live family a tombstone (no-op if it is one).
CREATE FUNCTION family_bury(f refresh_families, p_now timestamptz) RETURNS refresh_families
    LANGUAGE plpgsql SET search_path FROM CURRENT
    AS $$
BEGIN
    IF f.revoked THEN
        RETURN f;
    END IF;
    UPDATE refresh_families
    SET revoked = true, expires_at = least(f.expires_at, p_now + f.retention),
        current_hash = NULL, previous_hash = NULL, rotated_at = NULL,
        sealed_successor = NULL, idem_key_hash = NULL, idem_response = NULL
    WHERE id = f.id
    RETURNING * INTO f;
    DELETE FROM refresh_history WHERE family_id = f.id;
    RETURN f;
END
$$;

-- One rotation step (see `RefreshStore::rotate`): the family row locked for the whole step,
-- the time read once the lock is held. `outcome`: rotated, grace, reused, revoked, invalid.
CREATE FUNCTION family_rotate(
    p_id text, p_presented bytea, p_successor bytea, p_sealed bytea, p_idem_key bytea,
    p_grace_us bigint, p_history_cap integer, p_access_exp_us bigint,
    OUT outcome text, OUT family refresh_families, OUT reuse text,
    OUT sealed_successor bytea, OUT idem_key_hash bytea, OUT idem_response bytea
)
    LANGUAGE plpgsql SET search_path FROM CURRENT
    AS $$
DECLARE
    f refresh_families;
    v_now timestamptz;
    v_aexp timestamptz := us_ts(p_access_exp_us);
BEGIN
    SELECT * INTO f FROM refresh_families WHERE id = p_id FOR UPDATE;
    v_now := clock_timestamp();
    IF NOT FOUND THEN
        outcome := 'invalid';
        RETURN;
    END IF;
    IF v_now >= f.expires_at THEN
        -- Expired (a tombstone past its retention included): gone now, not at the purge.
        DELETE FROM refresh_families WHERE id = p_id;
        outcome := 'invalid';
        RETURN;
    END IF;
    IF f.revoked THEN
        outcome := 'revoked';
        family := f;
        RETURN;
    END IF;
    IF ct_eq(f.current_hash, p_presented) THEN
        IF f.previous_hash IS NOT NULL THEN
            INSERT INTO refresh_history (family_id, seq, hash)
            VALUES (p_id, f.generation + 1, f.previous_hash)
            ON CONFLICT DO NOTHING;
            IF FOUND THEN
                f.generation := f.generation + 1;
                DELETE FROM refresh_history
                WHERE family_id = p_id AND seq <= f.generation - p_history_cap;
            END IF;
        END IF;
        UPDATE refresh_families
        SET previous_hash = f.current_hash, rotated_at = v_now, sealed_successor = p_sealed,
            current_hash = p_successor, last_used = v_now, generation = f.generation,
            idem_key_hash = p_idem_key, idem_response = NULL,
            access_exp = greatest(f.access_exp, v_aexp),
            expires_at = least(f.absolute_exp, v_now + f.idle)
        WHERE id = p_id
        RETURNING * INTO family;
        outcome := 'rotated';
        RETURN;
    END IF;
    IF f.previous_hash IS NOT NULL AND ct_eq(f.previous_hash, p_presented) THEN
        IF v_now < f.rotated_at + p_grace_us * interval '1 microsecond' THEN
            IF v_aexp > f.access_exp THEN
                UPDATE refresh_families SET access_exp = v_aexp WHERE id = p_id
                RETURNING * INTO f;
            END IF;
            outcome := 'grace';
            family := f;
            sealed_successor := f.sealed_successor;
            IF f.idem_response IS NOT NULL THEN
                idem_key_hash := f.idem_key_hash;
                idem_response := f.idem_response;
            END IF;
            RETURN;
        END IF;
        reuse := 'previous';
    ELSIF EXISTS (SELECT 1 FROM refresh_history WHERE family_id = p_id AND hash = p_presented)
    THEN
        reuse := 'history';
    ELSE
        outcome := 'invalid';
        RETURN;
    END IF;
    family := family_bury(f, v_now);
    outcome := 'reused';
END
$$;

-- Revokes a live family (a tombstone; a tombstone stays as it is). NULL if there is none.
CREATE FUNCTION family_revoke(p_id text) RETURNS refresh_families
    LANGUAGE plpgsql SET search_path FROM CURRENT
    AS $$
DECLARE
    f refresh_families;
    v_now timestamptz;
BEGIN
    SELECT * INTO f FROM refresh_families WHERE id = p_id FOR UPDATE;
    v_now := clock_timestamp();
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF v_now >= f.expires_at THEN
        DELETE FROM refresh_families WHERE id = p_id;
        RETURN NULL;
    END IF;
    RETURN family_bury(f, v_now);
END
$$;
