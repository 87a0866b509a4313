//! Provider profiles: tokens shaped as each provider issues them verify under their profile,
//! with scopes and roles read where the provider puts them; and the attacks their quirks
//! invite are rejected with the exact class.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokenward_claims::{
    KeySet, PolicyBuilder, PolicyError, Profile, RejectionClass, ValidationPolicy, Validator,
    Verified,
};

use super::*;
use RejectionClass::*;

const TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";
const OTHER_TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const ENTRA_V2: &str = "https://login.microsoftonline.com/{tenantid}/v2.0";
const ENTRA_V1: &str = "https://sts.windows.net/{tenantid}/";
const KEYCLOAK: &str = "https://kc.example.com/realms/acme";
const COGNITO: &str = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf";
const COGNITO_CLIENT: &str = "5abcdefghij1234567890";
const AUTH0: &str = "https://acme.eu.auth0.com/";
const AUTH0_API: &str = "https://orders.example.com";
const OKTA: &str = "https://dev-1.okta.com/oauth2/default";
const GOOGLE_CLIENT: &str = "1234-abc.apps.googleusercontent.com";

/// A provider's setup: its profile, key set, issuers and audiences, and a valid token's header
/// and payload (with every extra member the provider sends).
struct Provider {
    profile: Profile,
    kid: &'static str,
    issuers: Vec<&'static str>,
    audience: &'static str,
    header: Value,
    payload: Value,
}

fn entra(v1: bool) -> Provider {
    let (iss, ver) = if v1 {
        (format!("https://sts.windows.net/{TENANT}/"), "1.0")
    } else {
        (
            format!("https://login.microsoftonline.com/{TENANT}/v2.0"),
            "2.0",
        )
    };
    Provider {
        profile: Profile::Entra,
        kid: "entra-1",
        issuers: vec![ENTRA_V2, ENTRA_V1],
        audience: "api://orders",
        header: json!({"typ": "JWT", "alg": "RS256", "kid": "entra-1", "x5t": "entra-1"}),
        payload: json!({
            "aud": "api://orders", "iss": iss, "iat": NOW - 60, "nbf": NOW - 60,
            "exp": NOW - 60 + 75 * 60, "aio": "AWQAm/8TAAAA", "azp": "c0ffee00-aaaa-bbbb-cccc-123456789012",
            "azpacr": "0", "name": "Alice", "oid": "00000000-0000-0000-0000-00000000000a",
            "preferred_username": "alice@acme.example", "rh": "0.AX", "scp": "Orders.Read Orders.Write",
            "roles": ["Orders.Admin"], "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
            "tid": TENANT, "uti": "fqiBqXLPj0eQa82S-IYFAA", "ver": ver,
        }),
    }
}

fn keycloak() -> Provider {
    Provider {
        profile: Profile::Keycloak,
        kid: "kc-sig",
        issuers: vec![KEYCLOAK],
        audience: "orders-api",
        header: json!({"alg": "RS256", "typ": "JWT", "kid": "kc-sig"}),
        payload: json!({
            "exp": NOW + 300, "iat": NOW, "auth_time": NOW - 5, "jti": "onrtac:5f0c2b2e",
            "iss": KEYCLOAK, "aud": ["orders-api", "account"], "sub": "f:3b4c:alice", "typ": "Bearer",
            "azp": "orders-web", "sid": "9b2c6c8e-1a2b", "acr": "1",
            "allowed-origins": ["https://orders.example.com"],
            "realm_access": {"roles": ["offline_access", "user"]},
            "resource_access": {"orders-web": {"roles": ["orders-admin"]},
                                "account": {"roles": ["manage-account"]}},
            "scope": "openid profile email", "email_verified": true, "preferred_username": "alice",
        }),
    }
}

fn cognito() -> Provider {
    Provider {
        profile: Profile::Cognito,
        kid: "cog-1",
        issuers: vec![COGNITO],
        audience: COGNITO_CLIENT,
        header: json!({"kid": "cog-1", "alg": "RS256"}),
        payload: json!({
            "sub": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "cognito:groups": ["admins"],
            "iss": COGNITO, "version": 2, "client_id": COGNITO_CLIENT,
            "origin_jti": "bbbbbbbb-0000", "event_id": "cccccccc-1111", "token_use": "access",
            "scope": "orders/read aws.cognito.signin.user.admin", "auth_time": NOW,
            "exp": NOW + 3600, "iat": NOW, "jti": "dddddddd-2222", "username": "alice",
        }),
    }
}

fn auth0() -> Provider {
    Provider {
        profile: Profile::Auth0,
        kid: "auth0-1",
        issuers: vec![AUTH0],
        audience: AUTH0_API,
        header: json!({"alg": "RS256", "typ": "JWT", "kid": "auth0-1"}),
        payload: json!({
            "iss": AUTH0, "sub": "auth0|64f1", "aud": [AUTH0_API, "https://acme.eu.auth0.com/userinfo"],
            "iat": NOW, "exp": NOW + 86_400, "scope": "openid profile read:orders",
            "azp": "xyzClientId", "permissions": ["read:orders", "write:orders"],
        }),
    }
}

fn okta() -> Provider {
    Provider {
        profile: Profile::Okta,
        kid: "okta-1",
        issuers: vec![OKTA],
        audience: "api://default",
        // Okta sends no `typ`.
        header: json!({"kid": "okta-1", "alg": "RS256"}),
        payload: json!({
            "ver": 1, "jti": "AT.x8VDp0G9", "iss": OKTA, "aud": "api://default", "iat": NOW,
            "exp": NOW + 3600, "cid": "0oa1", "uid": "00u1", "scp": ["openid", "orders.read"],
            "auth_time": NOW, "sub": "alice@acme.example", "groups": ["Everyone", "Admins"],
        }),
    }
}

fn google(iss: &'static str) -> Provider {
    Provider {
        profile: Profile::Google,
        kid: "g-1",
        issuers: vec!["https://accounts.google.com"],
        audience: GOOGLE_CLIENT,
        header: json!({"alg": "RS256", "kid": "g-1", "typ": "JWT"}),
        payload: json!({
            "iss": iss, "azp": GOOGLE_CLIENT, "aud": GOOGLE_CLIENT, "sub": "110169484474386276334",
            "email": "alice@gmail.com", "email_verified": true, "at_hash": "HK6E_P6Dh8Y93mRNtsDB1Q",
            "iat": NOW, "exp": NOW + 3600,
        }),
    }
}

fn keys_for(p: &Provider) -> KeySet {
    let doc = match p.profile {
        Profile::Entra => entra_jwks(),
        Profile::Keycloak => keycloak_jwks(),
        Profile::Auth0 => auth0_jwks(),
        _ => simple_jwks(p.kid),
    };
    KeySet::from_jwks_json(&doc.to_string()).unwrap()
}

fn policy_for(p: &Provider) -> PolicyBuilder {
    let mut b = ValidationPolicy::builder()
        .profile(p.profile)
        .audience(p.audience)
        .clock(Arc::new(clock()));
    for iss in &p.issuers {
        b = b.issuer(*iss);
    }
    b
}

fn with(mut v: Value, overrides: Value) -> Value {
    for (k, val) in overrides.as_object().unwrap() {
        if val.is_null() {
            v.as_object_mut().unwrap().remove(k);
        } else {
            v[k] = val.clone();
        }
    }
    v
}

fn token(p: &Provider, overrides: Value) -> String {
    forge(
        &p.header.to_string(),
        &with(p.payload.clone(), overrides).to_string(),
        &signing_key(p.kid),
    )
}

fn verify(
    p: &Provider,
    build: impl FnOnce(PolicyBuilder) -> PolicyBuilder,
    token: &str,
) -> Result<Verified, tokenward_claims::Rejection> {
    let policy = build(policy_for(p)).build().unwrap();
    Validator::new(policy, keys_for(p)).verify(token)
}

#[test]
fn provider_tokens_verify_under_their_profile_with_scopes_and_roles() {
    // (name, provider, scopes, roles)
    let cases: Vec<(&str, Provider, &[&str], &[&str])> = vec![
        (
            "entra v2",
            entra(false),
            &["Orders.Read", "Orders.Write"],
            &["Orders.Admin"],
        ),
        (
            "entra v1",
            entra(true),
            &["Orders.Read", "Orders.Write"],
            &["Orders.Admin"],
        ),
        (
            "keycloak",
            keycloak(),
            &["openid", "profile", "email"],
            &["offline_access", "user", "orders-admin"],
        ),
        (
            "cognito",
            cognito(),
            &["orders/read", "aws.cognito.signin.user.admin"],
            &["admins"],
        ),
        (
            "auth0",
            auth0(),
            &["openid", "profile", "read:orders"],
            &["read:orders", "write:orders"],
        ),
        (
            "okta",
            okta(),
            &["openid", "orders.read"],
            &["Everyone", "Admins"],
        ),
        ("google", google("https://accounts.google.com"), &[], &[]),
        (
            "google short spelling",
            google("accounts.google.com"),
            &[],
            &[],
        ),
    ];
    for (name, p, scopes, roles) in cases {
        let verified =
            verify(&p, |b| b, &token(&p, json!({}))).unwrap_or_else(|r| panic!("{name}: {r}"));
        assert_eq!(verified.grants.scopes(), scopes, "{name}");
        assert_eq!(verified.grants.roles(), roles, "{name}");
        if let (Some(scope), Some(role)) = (scopes.first(), roles.first()) {
            assert!(verified.grants.require_scopes([scope]).is_ok(), "{name}");
            assert!(verified.grants.require_roles([role]).is_ok(), "{name}");
        }
        // A missing scope or role is class `scope`.
        let missing = verified
            .grants
            .require_scopes(["orders:delete"])
            .unwrap_err();
        assert_eq!(missing.class(), Scope, "{name}");
        let missing = verified.grants.require_roles(["superuser"]).unwrap_err();
        assert_eq!(missing.class(), Scope, "{name}");
        assert!(missing.reason().contains("superuser"), "{name}");
    }
}

type Attack = (
    &'static str,
    Provider,
    Box<dyn Fn(PolicyBuilder) -> PolicyBuilder>,
    Value,
    Result<(), RejectionClass>,
);

fn same(b: PolicyBuilder) -> PolicyBuilder {
    b
}

#[test]
fn the_attacks_provider_quirks_invite() {
    let other_iss = format!("https://login.microsoftonline.com/{OTHER_TENANT}/v2.0");
    let cases: Vec<Attack> = vec![
        // Entra multi-tenant: the template, its tenant and `tid`.
        (
            "entra: another tenant, restricted",
            entra(false),
            Box::new(|b| b.tenant(TENANT)),
            json!({"iss": other_iss, "tid": OTHER_TENANT}),
            Err(Issuer),
        ),
        (
            "entra: another tenant, unrestricted",
            entra(false),
            Box::new(same),
            json!({"iss": other_iss, "tid": OTHER_TENANT}),
            Ok(()),
        ),
        (
            "entra: listed tenant, upper-case tid",
            entra(false),
            Box::new(|b| b.tenant(TENANT).tenant(OTHER_TENANT)),
            json!({"tid": TENANT.to_uppercase()}),
            Ok(()),
        ),
        (
            "entra: tid disagrees with the templated iss",
            entra(false),
            Box::new(same),
            json!({"tid": OTHER_TENANT}),
            Err(Issuer),
        ),
        (
            "entra: no tid",
            entra(false),
            Box::new(same),
            json!({"tid": null}),
            Err(Issuer),
        ),
        (
            "entra: tid not a string",
            entra(false),
            Box::new(same),
            json!({"tid": 7}),
            Err(Claims),
        ),
        (
            "entra: iss is the template itself",
            entra(false),
            Box::new(same),
            json!({"iss": ENTRA_V2, "tid": "{tenantid}"}),
            Err(Issuer),
        ),
        (
            "entra: 'common' in place of the tenant",
            entra(false),
            Box::new(same),
            json!({"iss": "https://login.microsoftonline.com/common/v2.0", "tid": "common"}),
            Err(Issuer),
        ),
        (
            "entra: look-alike host",
            entra(false),
            Box::new(same),
            json!({"iss": format!("https://login.microsoftonline.com.evil.example/{TENANT}/v2.0")}),
            Err(Issuer),
        ),
        (
            "entra: extra path segment",
            entra(false),
            Box::new(same),
            json!({"iss": format!("https://login.microsoftonline.com/{TENANT}/v2.0/x")}),
            Err(Issuer),
        ),
        (
            "entra: token for another API",
            entra(false),
            Box::new(same),
            json!({"aud": "api://billing"}),
            Err(Audience),
        ),
        (
            "entra: 89 minutes",
            entra(false),
            Box::new(same),
            json!({"exp": NOW - 60 + 89 * 60}),
            Ok(()),
        ),
        (
            "entra: 2 hours",
            entra(false),
            Box::new(same),
            json!({"exp": NOW - 60 + 120 * 60}),
            Err(Claims),
        ),
        (
            "entra: narrowed lifetime",
            entra(false),
            Box::new(|b| b.max_lifetime(Duration::from_secs(3600))),
            json!({}),
            Err(Claims),
        ),
        (
            "entra: roles as a string",
            entra(false),
            Box::new(same),
            json!({"roles": "Orders.Admin"}),
            Err(Claims),
        ),
        (
            "entra: scp a number",
            entra(false),
            Box::new(same),
            json!({"scp": 5}),
            Err(Claims),
        ),
        (
            "entra: expired",
            entra(false),
            Box::new(same),
            json!({"exp": NOW - 31}),
            Err(Expired),
        ),
        (
            "entra: not yet valid",
            entra(false),
            Box::new(same),
            json!({"nbf": NOW + 120}),
            Err(NotYetValid),
        ),
        // Keycloak: ID and refresh tokens, another client.
        (
            "keycloak: ID token",
            keycloak(),
            Box::new(same),
            json!({"typ": "ID", "aud": "orders-api"}),
            Err(Typ),
        ),
        (
            "keycloak: refresh token",
            keycloak(),
            Box::new(same),
            json!({"typ": "Refresh"}),
            Err(Typ),
        ),
        (
            "keycloak: no typ claim",
            keycloak(),
            Box::new(same),
            json!({"typ": null}),
            Err(Typ),
        ),
        (
            "keycloak: typ claim bearer (case)",
            keycloak(),
            Box::new(same),
            json!({"typ": "bearer"}),
            Err(Typ),
        ),
        (
            "keycloak: token for another client",
            keycloak(),
            Box::new(same),
            json!({"aud": ["billing-api", "account"]}),
            Err(Audience),
        ),
        (
            "keycloak: another realm",
            keycloak(),
            Box::new(same),
            json!({"iss": "https://kc.example.com/realms/other"}),
            Err(Issuer),
        ),
        (
            "keycloak: no jti",
            keycloak(),
            Box::new(same),
            json!({"jti": null}),
            Err(Claims),
        ),
        (
            "keycloak: realm_access not an object",
            keycloak(),
            Box::new(same),
            json!({"realm_access": ["admin"]}),
            Err(Claims),
        ),
        (
            "keycloak: client roles of another client are not ours",
            keycloak(),
            Box::new(same),
            json!({"azp": "account"}),
            Ok(()),
        ),
        // Cognito: ID tokens, other clients, no `aud`.
        (
            "cognito: ID token",
            cognito(),
            Box::new(same),
            json!({"token_use": "id", "aud": COGNITO_CLIENT, "client_id": null}),
            Err(Typ),
        ),
        (
            "cognito: no token_use",
            cognito(),
            Box::new(same),
            json!({"token_use": null}),
            Err(Typ),
        ),
        (
            "cognito: another app client",
            cognito(),
            Box::new(same),
            json!({"client_id": "otherclient"}),
            Err(Audience),
        ),
        (
            "cognito: no client_id",
            cognito(),
            Box::new(same),
            json!({"client_id": null}),
            Err(Audience),
        ),
        (
            "cognito: aud naming us, client_id another",
            cognito(),
            Box::new(same),
            json!({"aud": COGNITO_CLIENT, "client_id": "otherclient"}),
            Err(Audience),
        ),
        (
            "cognito: another user pool",
            cognito(),
            Box::new(same),
            json!({"iss": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Other"}),
            Err(Issuer),
        ),
        (
            "cognito: groups not an array",
            cognito(),
            Box::new(same),
            json!({"cognito:groups": {"a": 1}}),
            Err(Claims),
        ),
        // Auth0: 24 hours, another API.
        (
            "auth0: another API",
            auth0(),
            Box::new(same),
            json!({"aud": ["https://billing.example.com", "https://acme.eu.auth0.com/userinfo"]}),
            Err(Audience),
        ),
        (
            "auth0: 25 hours",
            auth0(),
            Box::new(same),
            json!({"exp": NOW + 25 * 3600}),
            Err(Claims),
        ),
        (
            "auth0: narrowed to 1 hour",
            auth0(),
            Box::new(|b| b.max_lifetime(Duration::from_secs(3600))),
            json!({}),
            Err(Claims),
        ),
        (
            "auth0: issuer without the trailing slash",
            auth0(),
            Box::new(same),
            json!({"iss": "https://acme.eu.auth0.com"}),
            Err(Issuer),
        ),
        (
            "auth0: empty sub",
            auth0(),
            Box::new(same),
            json!({"sub": ""}),
            Err(Claims),
        ),
        // Okta.
        (
            "okta: another authorization server",
            okta(),
            Box::new(same),
            json!({"iss": "https://dev-1.okta.com/oauth2/aus2"}),
            Err(Issuer),
        ),
        (
            "okta: scp with a number",
            okta(),
            Box::new(same),
            json!({"scp": ["openid", 5]}),
            Err(Claims),
        ),
        (
            "okta: typ header required by the policy",
            okta(),
            Box::new(|b| b.require_typ()),
            json!({}),
            Err(Typ),
        ),
        // Google: two spellings, nothing else.
        (
            "google: look-alike issuer",
            google("https://accounts.google.com.evil.example"),
            Box::new(same),
            json!({}),
            Err(Issuer),
        ),
        (
            "google: http spelling",
            google("http://accounts.google.com"),
            Box::new(same),
            json!({}),
            Err(Issuer),
        ),
        (
            "google: another client",
            google("accounts.google.com"),
            Box::new(same),
            json!({"aud": "999-x.apps.googleusercontent.com"}),
            Err(Audience),
        ),
    ];
    let mut failures = Vec::new();
    for (name, p, build, overrides, expect) in cases {
        let token = token(&p, overrides);
        let got = verify(&p, build, &token).map(|_| ()).map_err(|r| {
            assert!(
                !r.reason().contains(&token),
                "{name}: reason echoes the token"
            );
            r.class()
        });
        if got != expect {
            failures.push(format!("{name}: expected {expect:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn profiles_never_weaken_signature_algorithm_issuer_or_audience() {
    let p = entra(false);
    let forged = forge_hmac(
        &json!({"alg": "HS256", "kid": "entra-1"}).to_string(),
        &p.payload.to_string(),
        RSA_PUBLIC.as_bytes(),
    );
    assert_eq!(verify(&p, same, &forged).unwrap_err().class(), Algorithm);
    let other = tokenward_claims::Key::from_pem(
        "entra-1",
        tokenward_claims::Algorithm::RS256,
        RSA_ENC_PRIVATE.as_bytes(),
    )
    .unwrap();
    let wrong_key = forge(&p.header.to_string(), &p.payload.to_string(), &other);
    assert_eq!(verify(&p, same, &wrong_key).unwrap_err().class(), Signature);
    // Issuer and audience stay mandatory under every profile.
    for profile in Profile::ALL {
        let no_iss = ValidationPolicy::builder()
            .profile(profile)
            .audience("a")
            .build();
        assert_eq!(no_iss.unwrap_err(), PolicyError::NoIssuer, "{profile}");
        let no_aud = ValidationPolicy::builder()
            .profile(profile)
            .issuer("i")
            .build();
        assert_eq!(no_aud.unwrap_err(), PolicyError::NoAudience, "{profile}");
    }
}

#[test]
fn templates_and_tenants_are_checked_at_build() {
    let base = || ValidationPolicy::builder().audience("a");
    for (name, builder, field) in [
        (
            "template without a profile",
            base().issuer(ENTRA_V2),
            "`issuer`",
        ),
        (
            "template under another profile",
            base().profile(Profile::Okta).issuer(ENTRA_V2),
            "`issuer`",
        ),
        (
            "template twice",
            base()
                .profile(Profile::Entra)
                .issuer("https://x/{tenantid}/{tenantid}"),
            "`issuer`",
        ),
        (
            "tenant without a template",
            base()
                .profile(Profile::Entra)
                .issuer("https://x/")
                .tenant(TENANT),
            "`tenant`",
        ),
        (
            "tenant not a GUID",
            base()
                .profile(Profile::Entra)
                .issuer(ENTRA_V2)
                .tenant("contoso.com"),
            "`tenant`",
        ),
    ] {
        let err = builder.build().unwrap_err();
        assert!(err.to_string().starts_with(field), "{name}: {err}");
    }
    let p = base()
        .profile(Profile::Entra)
        .issuer(ENTRA_V2)
        .tenant(TENANT)
        .build()
        .unwrap();
    assert!(p.issuers().is_empty());
    assert_eq!(p.issuer_templates(), [ENTRA_V2]);
    assert!(p.names_issuer(&format!(
        "https://login.microsoftonline.com/{OTHER_TENANT}/v2.0"
    )));
    let g = base()
        .profile(Profile::Google)
        .issuer("accounts.google.com")
        .build()
        .unwrap();
    assert_eq!(
        g.issuers(),
        ["accounts.google.com", "https://accounts.google.com"]
    );
    // Profile defaults, replaced by explicit settings.
    let a = base().profile(Profile::Auth0).issuer("i").build().unwrap();
    assert_eq!(a.max_lifetime(), Some(Duration::from_secs(86_400)));
    assert!(!a.required().contains(&tokenward_claims::Claim::Jti));
    let a = base()
        .profile(Profile::Auth0)
        .issuer("i")
        .max_lifetime(Duration::from_secs(600))
        .require(tokenward_claims::Claim::Jti)
        .build()
        .unwrap();
    assert_eq!(a.max_lifetime(), Some(Duration::from_secs(600)));
    assert!(a.required().contains(&tokenward_claims::Claim::Jti));
}

#[test]
fn the_router_routes_templated_issuers() {
    let p = entra(false);
    let policy = policy_for(&p).build().unwrap();
    let router = tokenward_claims::IssuerRouter::new()
        .route(Validator::new(policy, keys_for(&p)))
        .unwrap();
    assert!(router.verify(&token(&p, json!({}))).is_ok());
    let other = token(&p, json!({"tid": OTHER_TENANT}));
    assert_eq!(router.verify(&other).unwrap_err().class(), Issuer);
}
