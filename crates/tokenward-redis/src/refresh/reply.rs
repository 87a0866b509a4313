//! Decoding the scripts' replies: anything off is `Corrupt`, never a rotation.

use redis::Value;
use tokenward_core::{StoreError, StoreId, UnixTime};
use tokenward_refresh::{
    FamilyId, FamilyInfo, IdempotencyRecord, ReuseKind, RotationResult, Sealed, TokenHash,
};

/// A family-script reply: `{'invalid'}` → `None`, `{'family', info…}` → the family.
pub(super) fn parse_family_reply(
    id: &FamilyId,
    reply: Value,
) -> Result<Option<FamilyInfo>, StoreError> {
    let items = Reply::new(reply)?;
    match items.kind()? {
        "invalid" => Ok(None),
        "family" => items.info(id).map(Some),
        other => Err(StoreError::corrupt(format!(
            "unexpected family script reply {other:?}"
        ))),
    }
}

/// A script's array reply, decoded field by field; anything off is `Corrupt`.
pub(super) struct Reply(Vec<Value>);

impl Reply {
    pub(super) fn new(value: Value) -> Result<Self, StoreError> {
        match value {
            Value::Array(items) => Ok(Reply(items)),
            _ => Err(StoreError::corrupt(
                "a refresh script did not return an array",
            )),
        }
    }

    fn bytes(&self, i: usize) -> Result<&[u8], StoreError> {
        match self.0.get(i) {
            Some(Value::BulkString(b)) => Ok(b),
            Some(Value::SimpleString(s)) => Ok(s.as_bytes()),
            _ => Err(StoreError::corrupt(format!(
                "refresh script reply: field {i} is not a string"
            ))),
        }
    }

    fn int(&self, i: usize) -> Result<u64, StoreError> {
        match self.0.get(i) {
            Some(Value::Int(n)) => u64::try_from(*n).map_err(|_| {
                StoreError::corrupt(format!("refresh script reply: field {i} is negative"))
            }),
            _ => Err(StoreError::corrupt(format!(
                "refresh script reply: field {i} is not an integer"
            ))),
        }
    }

    pub(super) fn kind(&self) -> Result<&str, StoreError> {
        let kind = std::str::from_utf8(self.bytes(0)?)
            .map_err(|_| StoreError::corrupt("refresh script reply: kind is not UTF-8"))?;
        if kind == "corrupt" {
            let why = self
                .bytes(1)
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            return Err(StoreError::corrupt(format!("refresh family record: {why}")));
        }
        Ok(kind)
    }

    /// Fields 1..=6: sub, created, last used, expiry, revoked, access expiry.
    fn info(&self, id: &FamilyId) -> Result<FamilyInfo, StoreError> {
        let sub = String::from_utf8(self.bytes(1)?.to_vec())
            .ok()
            .and_then(|sub| StoreId::new(sub).ok())
            .ok_or_else(|| StoreError::corrupt("refresh family record: sub is not a valid id"))?;
        let revoked = match self.int(5)? {
            0 => false,
            1 => true,
            _ => {
                return Err(StoreError::corrupt(
                    "refresh family record: bad revoked flag",
                ));
            }
        };
        Ok(
            FamilyInfo::new(id.clone(), sub, UnixTime::from_millis(self.int(2)?))
                .with_last_used(UnixTime::from_millis(self.int(3)?))
                .with_expires_at(UnixTime::from_millis(self.int(4)?))
                .with_access_exp(UnixTime::from_millis(self.int(6)?))
                .with_revoked(revoked),
        )
    }

    fn hash(&self, i: usize) -> Result<TokenHash, StoreError> {
        <[u8; 32]>::try_from(self.bytes(i)?)
            .map(TokenHash)
            .map_err(|_| StoreError::corrupt("refresh family record: a hash is not 32 bytes"))
    }
}

pub(super) fn parse_rotation(id: &FamilyId, reply: Value) -> Result<RotationResult, StoreError> {
    let reply = Reply::new(reply)?;
    Ok(match reply.kind()? {
        "invalid" => RotationResult::Invalid,
        "rotated" => RotationResult::Rotated(reply.info(id)?),
        "revoked" => RotationResult::Revoked(reply.info(id)?),
        "reused" => RotationResult::Reused {
            family: reply.info(id)?,
            kind: match reply.bytes(7)? {
                b"previous" => ReuseKind::PredecessorAfterWindow,
                b"history" => ReuseKind::OlderToken,
                _ => return Err(StoreError::corrupt("refresh script reply: bad reuse kind")),
            },
        },
        "grace" => {
            let sealed_successor = Sealed(reply.bytes(7)?.to_vec());
            let idempotency = if reply.bytes(8)?.is_empty() {
                None
            } else {
                Some(IdempotencyRecord::new(
                    reply.hash(8)?,
                    Sealed(reply.bytes(9)?.to_vec()),
                ))
            };
            RotationResult::Grace {
                family: reply.info(id)?,
                sealed_successor,
                idempotency,
            }
        }
        other => {
            return Err(StoreError::corrupt(format!(
                "unexpected rotation reply {other:?}"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_replies_are_corrupt() {
        let id = FamilyId::parse("AAAAAAAAAAAAAAAAAAAAAA").unwrap();
        for reply in [
            Value::Nil,
            Value::Int(1),
            Value::Array(vec![]),
            Value::Array(vec![Value::BulkString(b"rotated".to_vec())]),
            Value::Array(vec![Value::BulkString(b"other".to_vec())]),
            Value::Array(vec![
                Value::BulkString(b"corrupt".to_vec()),
                Value::BulkString(b"bad cur".to_vec()),
            ]),
            Value::Array(vec![
                Value::BulkString(b"reused".to_vec()),
                Value::BulkString(b"alice".to_vec()),
                Value::Int(1),
                Value::Int(2),
                Value::Int(3),
                Value::Int(1),
                Value::Int(4),
                Value::BulkString(b"sideways".to_vec()),
            ]),
        ] {
            let r = parse_rotation(&id, reply);
            assert!(
                matches!(&r, Err(e) if e.kind() == tokenward_core::StoreErrorKind::Corrupt),
                "{r:?}"
            );
        }
    }
}
