//! `tokenward verify`: strict verification of one token, or of one token per stdin line.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokenward_claims::{
    Algorithm, Claim, JwksOptions, KeySet, Profile, ValidationPolicy, Validator, Verified,
    alg as algs,
};
use tokenward_core::{ManualClock, UnixTime};

use crate::error::CliError;
use crate::escape::escape_controls;
use crate::keys::{self, AnyKid};
use crate::lines::{BoundedLines, Line};

/// Verify tokens strictly (exit 0: all valid, 1: any rejected, 2: usage or key error).
///
/// Without TOKEN (or with `-`), reads one token per line from standard input and answers each
/// on one line. Exit status: 0 when every token is valid, 1 when any is rejected, 2 on a
/// usage or key error.
#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("keys").required(true).args(["jwks", "key", "secret_file"]))]
pub(crate) struct Args {
    /// The token, used exactly as given. Omit it (or give `-`) to read tokens from stdin.
    #[arg(value_name = "TOKEN")]
    token: Option<OsString>,
    /// Trusted keys: a JWKS file (public keys, or `oct` secrets for HS*), as identity
    /// providers publish it: keys without `alg` bind to their key type's one algorithm (RSA:
    /// RS256), encryption keys and unsupported key types are skipped with a warning.
    #[arg(long, value_name = "FILE")]
    jwks: Option<PathBuf>,
    /// Trusted key: a PEM file (public or private key); needs exactly one --alg.
    #[arg(long, value_name = "PEM")]
    key: Option<PathBuf>,
    /// Trusted key: a file holding a raw HMAC secret (its exact bytes); needs --alg HS*.
    #[arg(long, value_name = "FILE")]
    secret_file: Option<PathBuf>,
    /// The kid of the --key/--secret-file key. Without it, that one key verifies tokens
    /// whatever kid they name (or none).
    #[arg(long, value_name = "KID", conflicts_with = "jwks")]
    kid: Option<String>,
    /// Allowed algorithm (repeatable); for --key/--secret-file, the algorithm the key is
    /// bound to.
    #[arg(long = "alg", value_name = "ALG", value_parser = keys::parse_alg)]
    algs: Vec<Algorithm>,
    /// Accepted issuer (repeatable). Without it the issuer is NOT checked.
    #[arg(long = "iss", value_name = "ISS")]
    issuers: Vec<String>,
    /// Accepted audience (repeatable). Without it the audience is NOT checked.
    #[arg(long = "aud", value_name = "AUD")]
    audiences: Vec<String>,
    /// Clock-skew leeway for exp/nbf/iat, in seconds (default 30, at most 300).
    #[arg(long, value_name = "SECS")]
    leeway: Option<u64>,
    /// Maximum token lifetime (exp - iat), in seconds (default 3600).
    #[arg(long, value_name = "SECS")]
    max_lifetime: Option<u64>,
    /// Required claims, comma-separated, replacing the default exp,iat,iss,aud,sub,jti
    /// (exp is always required). Known: iss, sub, aud, exp, nbf, iat, jti, sid.
    #[arg(long, value_name = "CLAIMS", value_delimiter = ',')]
    require: Option<Vec<String>>,
    /// Accepted `typ` header value (repeatable; default JWT and at+jwt). A token without
    /// `typ` is accepted unless --require-typ.
    #[arg(long = "typ", value_name = "VALUE")]
    typs: Vec<String>,
    /// Reject tokens without a `typ` header.
    #[arg(long)]
    require_typ: bool,
    /// Maximum token size in bytes, checked before decoding (default 8192).
    #[arg(long, value_name = "BYTES")]
    max_size: Option<usize>,
    /// Verify as of this time (seconds since the Unix epoch) instead of now.
    #[arg(long, value_name = "UNIX")]
    now: Option<u64>,
    /// One JSON object per answer: {"valid":true,"claims":{...}} or
    /// {"valid":false,"class":"...","reason":"..."}.
    #[arg(long)]
    json: bool,
    /// An identity provider's conventions: entra, auth0, okta, keycloak, cognito or google
    /// (required claims, maximum lifetime, audience claim, token kind, issuer forms, where
    /// scopes and roles live). Explicit flags (--max-lifetime, --require) override its
    /// defaults; --iss and --aud are still needed.
    #[arg(long, value_name = "NAME", value_parser = parse_profile)]
    profile: Option<Profile>,
    /// Required scope (repeatable: each must be present), read where the profile says
    /// (`scope`, or `scp` for entra and okta). A token without it answers class `scope`.
    #[arg(long = "scope", value_name = "SCOPE")]
    scopes: Vec<String>,
    /// Required role (repeatable: each must be present), read where the profile says
    /// (`roles`; keycloak realm and client roles, cognito groups, auth0 permissions, okta
    /// groups). A token without it answers class `scope`.
    #[arg(long = "role", value_name = "ROLE")]
    roles: Vec<String>,
    /// Accepted tenant (a GUID; repeatable) of a `{tenantid}` issuer template given with
    /// --iss (--profile entra). Without it, any tenant whose `tid` matches its `iss`.
    #[arg(long = "tenant", value_name = "ID")]
    tenants: Vec<String>,
    /// The algorithm RSA keys of --jwks without `alg` are bound to (default RS256; RS* or
    /// PS*, never HMAC).
    #[arg(long, value_name = "ALG", value_parser = keys::parse_alg, requires = "jwks")]
    rsa_alg: Option<Algorithm>,
}

fn parse_profile(s: &str) -> Result<Profile, String> {
    s.parse::<Profile>().map_err(|e| e.to_string())
}

/// The scopes and roles every valid token must carry.
struct Requirements<'a> {
    scopes: &'a [String],
    roles: &'a [String],
}

pub(crate) fn run(args: &Args) -> Result<ExitCode, CliError> {
    let validator = validator(args)?;
    let needs = Requirements {
        scopes: &args.scopes,
        roles: &args.roles,
    };
    let max_size = validator.policy().max_token_size();
    let mut out = io::stdout().lock();
    let mut all_valid = true;
    match args.token.as_deref() {
        Some(token) if token != "-" => {
            let line = match token.to_str() {
                Some(t) => Line::Text(t.to_owned()),
                None => Line::NotUtf8,
            };
            all_valid &= answer(&validator, &needs, max_size, &line, args.json, &mut out)?;
        }
        _ => {
            let mut lines = BoundedLines::new(io::stdin().lock(), max_size);
            while let Some(line) = lines.next_line().map_err(CliError::Input)? {
                all_valid &= answer(&validator, &needs, max_size, &line, args.json, &mut out)?;
            }
        }
    }
    out.flush().map_err(CliError::Output)?;
    Ok(if all_valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn validator(args: &Args) -> Result<Validator, CliError> {
    let mut policy = ValidationPolicy::builder();
    if let Some(profile) = args.profile {
        policy = policy.profile(profile);
    }
    for tenant in &args.tenants {
        policy = policy.tenant(tenant);
    }
    if args.issuers.is_empty() {
        eprintln!("tokenward: warning: no --iss given: the issuer is NOT checked");
        policy = policy.dangerous_skip_issuer_check();
    }
    for iss in &args.issuers {
        policy = policy.issuer(iss);
    }
    if args.audiences.is_empty() {
        eprintln!("tokenward: warning: no --aud given: the audience is NOT checked");
        policy = policy.dangerous_skip_audience_check();
    }
    for aud in &args.audiences {
        policy = policy.audience(aud);
    }
    if !args.algs.is_empty() {
        policy = policy.algorithms(args.algs.iter().copied());
    }
    if let Some(secs) = args.leeway {
        policy = policy.leeway(Duration::from_secs(secs));
    }
    if let Some(secs) = args.max_lifetime {
        policy = policy.max_lifetime(Duration::from_secs(secs));
    }
    if let Some(names) = &args.require {
        let claims = names
            .iter()
            .map(|name| {
                Claim::from_name(name.trim()).ok_or_else(|| {
                    CliError::Usage(format!(
                        "--require: unknown claim {name:?}; known: iss, sub, aud, exp, nbf, \
                         iat, jti, sid"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        policy = policy.required_claims(claims);
    }
    if !args.typs.is_empty() {
        policy = policy.typ(args.typs.iter().cloned());
    }
    if args.require_typ {
        policy = policy.require_typ();
    }
    if let Some(bytes) = args.max_size {
        policy = policy.max_token_size(bytes);
    }
    if let Some(now) = args.now {
        policy = policy.clock(Arc::new(ManualClock::new(UnixTime::from_secs(now))));
    }

    if let Some(path) = &args.jwks {
        let mut options = JwksOptions::new();
        if let Some(alg) = args.rsa_alg {
            options = options.rsa_alg(alg);
        }
        let jwks = keys::load_jwks_with(path, &options)?;
        if jwks.set.is_empty() {
            return Err(CliError::bad_file(path, "the key set holds no keys"));
        }
        return Ok(Validator::new(policy.build()?, jwks.set));
    }

    // One key from --key or --secret-file, bound to the one --alg.
    let alg = match args.algs.as_slice() {
        [alg] => *alg,
        _ => {
            return Err(CliError::Usage(
                "--key and --secret-file need exactly one --alg: the algorithm the key is \
                 bound to"
                    .into(),
            ));
        }
    };
    // Without --kid, the key is named after its file (it then verifies any kid anyway).
    let kid_for = |path: &std::path::Path| {
        args.kid
            .clone()
            .or_else(|| keys::kid_from_file_name(path).ok())
            .unwrap_or_else(|| "key".to_owned())
    };
    let key = match (&args.key, &args.secret_file) {
        (Some(path), _) => {
            if algs::is_hmac(alg) {
                return Err(CliError::Usage(format!(
                    "--key takes a PEM key; for {} use --secret-file",
                    algs::name(alg)
                )));
            }
            keys::load_pem(path, &kid_for(path), alg)?
        }
        (None, Some(path)) => keys::load_secret(path, &kid_for(path), alg)?,
        (None, None) => {
            return Err(CliError::Usage(
                "give --jwks, --key or --secret-file".into(),
            ));
        }
    };
    let policy = policy.build()?;
    Ok(if args.kid.is_some() {
        Validator::new(policy, KeySet::single(key))
    } else {
        Validator::new(policy, AnyKid(Arc::new(key)))
    })
}

#[derive(Serialize)]
struct ValidLine<'a> {
    valid: bool,
    claims: &'a serde_json::Map<String, Value>,
}

#[derive(Serialize)]
struct InvalidLine<'a> {
    valid: bool,
    class: &'a str,
    reason: &'a str,
}

/// Verifies one input and writes one answer line; returns whether the token is valid.
fn answer(
    validator: &Validator,
    needs: &Requirements<'_>,
    max_size: usize,
    line: &Line,
    json: bool,
    out: &mut impl Write,
) -> Result<bool, CliError> {
    let result = match line {
        Line::Text(token) => validator
            .verify_with::<BTreeMap<String, Value>>(token)
            .and_then(|verified| {
                verified.grants.require_scopes(needs.scopes)?;
                verified.grants.require_roles(needs.roles)?;
                Ok(verified)
            })
            .map_err(|r| (r.class().as_str(), r.reason().to_owned())),
        Line::TooLong(len) => Err((
            "malformed",
            format!("token is {len} bytes; the limit is {max_size}"),
        )),
        Line::NotUtf8 => Err(("malformed", "token is not valid UTF-8".to_owned())),
    };
    let text = match (&result, json) {
        (Ok(verified), true) => to_json(&ValidLine {
            valid: true,
            claims: &claims_json(verified),
        })?,
        (Ok(verified), false) => human_valid(verified),
        (Err((class, reason)), true) => to_json(&InvalidLine {
            valid: false,
            class,
            reason,
        })?,
        (Err((class, reason)), false) => {
            escape_controls(&format!("invalid ({class}): {reason}")).into_owned()
        }
    };
    writeln!(out, "{text}").map_err(CliError::Output)?;
    Ok(result.is_ok())
}

fn to_json(value: &impl Serialize) -> Result<String, CliError> {
    serde_json::to_string(value).map_err(|e| CliError::Output(io::Error::other(e)))
}

/// Registered and custom claims in one object.
fn claims_json(verified: &Verified<BTreeMap<String, Value>>) -> serde_json::Map<String, Value> {
    let mut claims = match serde_json::to_value(&verified.claims) {
        Ok(Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    for (name, value) in &verified.custom {
        claims.insert(name.clone(), value.clone());
    }
    claims
}

fn human_valid(verified: &Verified<BTreeMap<String, Value>>) -> String {
    let sub = verified.claims.sub.as_deref().unwrap_or("(none)");
    let exp = verified
        .claims
        .exp
        .map_or_else(|| "(none)".to_owned(), |e| e.to_string());
    // The token's own text: no control or bidi character reaches the terminal.
    escape_controls(&format!(
        "valid: sub={sub} exp={exp} kid={} alg={}",
        verified.kid,
        algs::name(verified.alg)
    ))
    .into_owned()
}
