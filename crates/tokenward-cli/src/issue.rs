//! `tokenward issue`: a signed access token on stdout.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokenward_claims::{
    AccessToken, Algorithm, DEFAULT_MAX_LIFETIME, KeySet, TokenIssuer, alg as algs,
};
use tokenward_core::{ManualClock, UnixTime};

use crate::error::CliError;
use crate::keys;

/// Issue a signed access token (printed on stdout).
///
/// The token carries iss, aud, sub, iat, nbf, exp, a random jti, optional sid and scope, and
/// kid and typ headers.
#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("signer").required(true).args(["keys", "key", "secret_file"]))]
pub(crate) struct Args {
    /// A key directory written by `tokenward keygen` (DIR/jwks.json + private key files).
    #[arg(long, value_name = "DIR")]
    keys: Option<PathBuf>,
    /// A PKCS#8 (or PKCS#1 RSA) private key PEM file; needs --alg.
    #[arg(long, value_name = "PEM")]
    key: Option<PathBuf>,
    /// A file holding a raw HMAC secret (its exact bytes); needs --alg HS256/HS384/HS512.
    #[arg(long, value_name = "FILE")]
    secret_file: Option<PathBuf>,
    /// The algorithm of --key/--secret-file (with --keys: must match the key's).
    #[arg(long, value_name = "ALG", value_parser = keys::parse_alg)]
    alg: Option<Algorithm>,
    /// The key to sign with. With --keys: default the newest key with a private key file;
    /// with --key/--secret-file: default the file name without extension.
    #[arg(long, value_name = "KID")]
    kid: Option<String>,
    /// The issuer (`iss`).
    #[arg(long, value_name = "ISS")]
    iss: String,
    /// The audience (`aud`; repeatable).
    #[arg(long = "aud", value_name = "AUD", required = true)]
    audiences: Vec<String>,
    /// The subject (`sub`).
    #[arg(long, value_name = "SUB")]
    sub: String,
    /// The session id (`sid`).
    #[arg(long, value_name = "SID")]
    sid: Option<String>,
    /// A scope (repeatable; joined with spaces into `scope`).
    #[arg(long = "scope", value_name = "SCOPE")]
    scopes: Vec<String>,
    /// Lifetime in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 900)]
    ttl: u64,
    /// The `typ` header.
    #[arg(long, value_name = "TYP", default_value = "at+jwt")]
    typ: String,
    /// Issue as of this time (seconds since the Unix epoch) instead of now.
    #[arg(long, value_name = "UNIX")]
    now: Option<u64>,
}

pub(crate) fn run(args: &Args) -> Result<ExitCode, CliError> {
    let key = match (&args.keys, &args.key, &args.secret_file) {
        (Some(dir), _, _) => keys::load_from_dir(dir, args.kid.as_deref(), args.alg)?,
        (None, Some(path), _) | (None, None, Some(path)) => {
            let alg = args
                .alg
                .ok_or_else(|| CliError::Usage("--key and --secret-file need --alg".into()))?;
            if args.key.is_some() && algs::is_hmac(alg) {
                return Err(CliError::Usage(format!(
                    "--key takes a PEM key; for {} use --secret-file",
                    algs::name(alg)
                )));
            }
            let kid = match &args.kid {
                Some(kid) => kid.clone(),
                None => keys::kid_from_file_name(path)?,
            };
            keys::load_private(path, &kid, alg)?
        }
        (None, None, None) => {
            return Err(CliError::Usage(
                "give --keys, --key or --secret-file".into(),
            ));
        }
    };
    let max_lifetime = DEFAULT_MAX_LIFETIME.as_secs();
    if args.ttl > max_lifetime {
        eprintln!(
            "tokenward: warning: --ttl {} is over an hour; tokenward's default policy rejects \
             tokens living longer than {max_lifetime} s",
            args.ttl
        );
    }

    let mut issuer = TokenIssuer::builder(KeySet::single(key), &args.iss)
        .ttl(Duration::from_secs(args.ttl))
        .typ(&args.typ);
    for aud in &args.audiences {
        issuer = issuer.audience(aud);
    }
    if let Some(now) = args.now {
        issuer = issuer.clock(Arc::new(ManualClock::new(UnixTime::from_secs(now))));
    }
    let mut request = AccessToken::new(&args.sub);
    if let Some(sid) = &args.sid {
        request = request.sid(sid);
    }
    for scope in &args.scopes {
        request = request.scope(scope);
    }
    let issued = issuer.build()?.issue(&request)?;
    writeln!(std::io::stdout().lock(), "{}", issued.token).map_err(CliError::Output)?;
    Ok(ExitCode::SUCCESS)
}
