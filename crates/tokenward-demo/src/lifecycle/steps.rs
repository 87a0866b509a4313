//! The lifecycle's steps, in the order [`Driver::script`](super::Driver) runs them: each
//! makes its requests and records what it expected and what it got.

use super::*;

impl Driver {
    /// Every step, in order; the first that cannot go on stops the run.
    pub(super) async fn script(&mut self) -> Result<(), Stop> {
        self.jwks().await?;
        let alice = self
            .login_step("Log in as alice", "alice", "alice-password", On::A)
            .await?;
        let sid = self.me_step(&alice).await?;
        self.tampered(&alice).await?;
        self.admin_forbidden(&alice).await?;
        let successor = self.parallel_refresh(&alice, &sid).await?;
        let latest = self.idempotent_retry(&successor).await?;
        self.reuse_after_grace(&successor, &latest).await?;
        self.logout().await?;
        self.logout_all().await?;
        self.subject_limit().await?;
        let admin = self.admin().await?;
        self.failure_ban(&admin).await?;
        Ok(())
    }

    async fn jwks(&mut self) -> Result<(), Stop> {
        self.begin("Fetch the public keys: GET /.well-known/jwks.json");
        let r = self.get(On::A, "/.well-known/jwks.json", None).await?;
        let keys = r.json().get("keys").and_then(Value::as_array).cloned();
        let public_only = keys.as_ref().is_some_and(|keys| {
            !keys.is_empty()
                && keys
                    .iter()
                    .all(|k| k.get("d").is_none() && k.get("k").is_none())
        });
        self.expect(
            "200, at least one key, public parts only (no `d`, no `k`)",
            &r,
            &["content-type", "cache-control"],
            r.status == 200 && public_only,
        );
        Ok(())
    }

    async fn me_step(&mut self, alice: &Session) -> Result<String, Stop> {
        self.begin(&format!(
            "GET /me with alice's access token{}",
            self.where_("", On::B)
        ));
        let r = self.get(On::B, "/me", Some(&alice.access)).await?;
        let body = r.json();
        let sid = body.get("sid").and_then(Value::as_str).map(str::to_owned);
        let ok = r.status == 200
            && body.get("sub") == Some(&json!("alice"))
            && sid.as_deref().is_some_and(|s| !s.is_empty())
            && body.get("jti").and_then(Value::as_str).is_some()
            && body.get("exp").and_then(Value::as_u64).is_some()
            && body.get("scopes") == Some(&json!([]))
            && r.header("ratelimit").is_some();
        self.expect(
            "200 {sub: alice, sid: the refresh family, jti, exp, scopes: []} + RateLimit headers",
            &r,
            &["ratelimit", "ratelimit-policy"],
            ok,
        );
        sid.ok_or_else(|| "GET /me gave no sid".to_owned())
    }

    async fn tampered(&mut self, alice: &Session) -> Result<(), Stop> {
        self.begin("Tampered token: alice's token with `sub` changed to admin, signature kept");
        let forged = tamper(&alice.access).ok_or("the access token is not a JWS")?;
        let r = self.get(On::A, "/me", Some(&forged)).await?;
        let challenge = r.header("www-authenticate").unwrap_or_default().to_owned();
        self.expect(
            "401, WWW-Authenticate: Bearer error=\"invalid_token\", the token not echoed",
            &r,
            &["www-authenticate"],
            r.status == 401
                && challenge.contains("error=\"invalid_token\"")
                && !r.text().contains(&forged),
        );
        let r = self.get(On::B, "/me", None).await?;
        self.expect(
            "no token at all: 401 with a bare `Bearer` challenge",
            &r,
            &["www-authenticate"],
            r.status == 401 && r.header("www-authenticate") == Some("Bearer"),
        );
        Ok(())
    }

    async fn admin_forbidden(&mut self, alice: &Session) -> Result<(), Stop> {
        self.begin("Admin scope: GET /admin/stats with alice's token (no `admin` scope)");
        let r = self.get(On::A, "/admin/stats", Some(&alice.access)).await?;
        self.expect(
            "403 insufficient_scope",
            &r,
            &["www-authenticate"],
            r.status == 403 && r.str_field("error").as_deref() == Some("insufficient_scope"),
        );
        Ok(())
    }

    async fn parallel_refresh(&mut self, alice: &Session, sid: &str) -> Result<Session, Stop> {
        const PARALLEL: usize = 4;
        self.begin(&format!(
            "Parallel refreshes: {PARALLEL} POST /refresh with the same refresh token at once{} \
             (a mobile app resuming)",
            if self.two {
                ", split between A and B"
            } else {
                ""
            }
        ));
        let mut tasks = Vec::with_capacity(PARALLEL);
        for i in 0..PARALLEL {
            let on = if i % 2 == 0 { On::A } else { On::B };
            let url = format!("{}/refresh", self.base(on));
            let client = self.client.clone();
            let body = json!({ "refresh_token": alice.refresh });
            tasks.push(tokio::spawn(async move {
                client.post(&url, &[], Some(&body)).await
            }));
        }
        let mut replies = Vec::with_capacity(PARALLEL);
        for task in tasks {
            match task.await {
                Ok(Ok(reply)) => replies.push(reply),
                Ok(Err(e)) => return Err(format!("POST /refresh got no response: {e}")),
                Err(e) => return Err(format!("POST /refresh task failed: {e}")),
            }
        }
        let statuses: Vec<u16> = replies.iter().map(|r| r.status.as_u16()).collect();
        let mut successors: Vec<String> = replies
            .iter()
            .filter_map(|r| r.str_field("refresh_token"))
            .collect();
        successors.sort();
        successors.dedup();
        let ok = statuses.iter().all(|s| *s == 200)
            && successors.len() == 1
            && successors.first() != Some(&alice.refresh);
        let got = format!(
            "statuses {statuses:?}; {} distinct successor(s): {}",
            successors.len(),
            successors
                .iter()
                .map(|s| abbreviate(s))
                .collect::<Vec<_>>()
                .join(", ")
        );
        self.expect_text(
            "all 200, and exactly one successor refresh token (the grace window)",
            &got,
            ok,
        );
        let (Some(successor), Some(access)) = (
            successors.first().cloned(),
            replies.iter().find_map(|r| r.str_field("access_token")),
        ) else {
            return Err("no successor refresh token".into());
        };
        let r = self.get(On::B, "/me", Some(&access)).await?;
        self.expect(
            "a new access token works, in the same session (sid unchanged)",
            &r,
            &[],
            r.status == 200 && r.str_field("sid").as_deref() == Some(sid),
        );
        Ok(Session {
            access,
            refresh: successor,
        })
    }

    async fn idempotent_retry(&mut self, current: &Session) -> Result<Session, Stop> {
        self.begin(
            "Idempotent retry: POST /refresh with Idempotency-Key: retry-42, then the same \
             request again (a retry after a lost response)",
        );
        let key = [("idempotency-key", "retry-42")];
        let body = json!({ "refresh_token": current.refresh });
        let first = self.post(On::A, "/refresh", &key, Some(&body)).await?;
        self.expect(
            "200 with a new refresh token",
            &first,
            &[],
            first.status == 200
                && first
                    .str_field("refresh_token")
                    .is_some_and(|t| t != current.refresh),
        );
        let retry = self.post(On::B, "/refresh", &key, Some(&body)).await?;
        let identical = retry.status == 200
            && first.str_field("refresh_token") == retry.str_field("refresh_token")
            && first.str_field("access_token") == retry.str_field("access_token");
        self.expect(
            &format!(
                "the retry{}: 200 with the identical response (same refresh and access token)",
                self.where_("", On::B)
            ),
            &retry,
            &[],
            identical,
        );
        match (
            first.str_field("access_token"),
            first.str_field("refresh_token"),
        ) {
            (Some(access), Some(refresh)) => Ok(Session { access, refresh }),
            _ => Err("the idempotent refresh gave no tokens".into()),
        }
    }

    async fn reuse_after_grace(
        &mut self,
        previous: &Session,
        latest: &Session,
    ) -> Result<(), Stop> {
        let wait = self.options.refresh_grace + Duration::from_secs(1);
        self.begin(&format!(
            "Reuse after the grace window: wait {}s, then present the already-rotated refresh \
             token again (what a thief replaying a stolen token does)",
            wait.as_secs()
        ));
        tokio::time::sleep(wait).await;
        let body = json!({ "refresh_token": previous.refresh });
        let r = self.post(On::B, "/refresh", &[], Some(&body)).await?;
        self.expect(
            "401 {\"error\":\"invalid_grant\"}: reuse detected, the whole family is revoked",
            &r,
            &[],
            r.status == 401 && r.str_field("error").as_deref() == Some("invalid_grant"),
        );
        let body = json!({ "refresh_token": latest.refresh });
        let r = self.post(On::A, "/refresh", &[], Some(&body)).await?;
        self.expect(
            "the family's newest refresh token is dead too: 401 invalid_grant",
            &r,
            &[],
            r.status == 401 && r.str_field("error").as_deref() == Some("invalid_grant"),
        );
        let r = self.get(On::B, "/me", Some(&latest.access)).await?;
        self.expect(
            "and so are its access tokens (session revoked): GET /me 401 invalid_token",
            &r,
            &["www-authenticate"],
            r.status == 401 && r.str_field("error").as_deref() == Some("invalid_token"),
        );
        Ok(())
    }

    async fn logout(&mut self) -> Result<(), Stop> {
        let laptop = self
            .login_step(
                "Logout: alice logs in on a laptop",
                "alice",
                "alice-password",
                On::A,
            )
            .await?;
        let phone = self
            .login_step("... and on a phone", "alice", "alice-password", On::B)
            .await?;
        self.begin("POST /logout with the laptop's access token");
        let bearer = format!("Bearer {}", laptop.access);
        let r = self
            .post(On::B, "/logout", &[("authorization", &bearer)], None)
            .await?;
        self.expect("204", &r, &[], r.status == 204);
        let r = self.get(On::A, "/me", Some(&laptop.access)).await?;
        self.expect(
            "the laptop's access token is revoked: 401",
            &r,
            &["www-authenticate"],
            r.status == 401,
        );
        let body = json!({ "refresh_token": laptop.refresh });
        let r = self.post(On::A, "/refresh", &[], Some(&body)).await?;
        self.expect(
            "the laptop's refresh token is revoked: 401 invalid_grant",
            &r,
            &[],
            r.status == 401 && r.str_field("error").as_deref() == Some("invalid_grant"),
        );
        let r = self.get(On::B, "/me", Some(&phone.access)).await?;
        self.expect(
            "the phone's session is untouched: 200",
            &r,
            &[],
            r.status == 200,
        );
        Ok(())
    }

    async fn logout_all(&mut self) -> Result<(), Stop> {
        let one = self
            .login_step(
                "Logout everywhere: bob logs in on one device",
                "bob",
                "bob-password",
                On::A,
            )
            .await?;
        let two = self
            .login_step("... and on another", "bob", "bob-password", On::B)
            .await?;
        self.begin("POST /logout-all with the first device's access token");
        let bearer = format!("Bearer {}", one.access);
        let r = self
            .post(On::A, "/logout-all", &[("authorization", &bearer)], None)
            .await?;
        self.expect("204", &r, &[], r.status == 204);
        for (name, session) in [("first", &one), ("second", &two)] {
            let r = self.get(On::B, "/me", Some(&session.access)).await?;
            self.expect(
                &format!("the {name} device's access token is revoked: 401"),
                &r,
                &[],
                r.status == 401,
            );
            let body = json!({ "refresh_token": session.refresh });
            let r = self.post(On::A, "/refresh", &[], Some(&body)).await?;
            self.expect(
                &format!("the {name} device's refresh token is revoked: 401 invalid_grant"),
                &r,
                &[],
                r.status == 401 && r.str_field("error").as_deref() == Some("invalid_grant"),
            );
        }
        Ok(())
    }

    async fn subject_limit(&mut self) -> Result<(), Stop> {
        let carol = self
            .login_step(
                "Subject limit: carol logs in",
                "carol",
                "carol-password",
                On::A,
            )
            .await?;
        let limit = self.options.subject_limit;
        self.begin(&format!(
            "GET /me as carol as fast as possible{} (limit {limit} per minute per subject)",
            if self.two {
                ", alternating A and B"
            } else {
                ""
            }
        ));
        // The budget refills at `limit` per minute while the loop runs: on a slow machine a
        // few more requests may pass. Two instances that did not share the budget would let
        // about twice `limit` through.
        let started = std::time::Instant::now();
        let max = limit.saturating_mul(2);
        let mut allowed = 0u32;
        let mut limited = None;
        for i in 0..max {
            let on = if i % 2 == 0 { On::A } else { On::B };
            let r = self.get(on, "/me", Some(&carol.access)).await?;
            match r.status.as_u16() {
                200 => allowed += 1,
                _ => {
                    limited = Some(r);
                    break;
                }
            }
        }
        let refilled = started.elapsed().as_secs_f64() * f64::from(limit) / 60.0;
        // Whole requests refilled while the loop ran, plus one for rounding.
        // (A float-to-int `as` saturates; the value is small and non-negative.)
        let slack = refilled.ceil() as u32;
        match limited {
            Some(r) => {
                let ok = r.status == 429
                    && allowed >= 1
                    && allowed <= limit.saturating_add(slack).saturating_add(1)
                    && r.header("retry-after").is_some()
                    && r.header("ratelimit").is_some()
                    && r.header("ratelimit-policy").is_some();
                self.expect(
                    &format!(
                        "about {limit} × 200{}, then 429 with Retry-After, RateLimit, \
                         RateLimit-Policy (got {allowed} × 200 first)",
                        if self.two {
                            " across both instances (one shared budget)"
                        } else {
                            ""
                        }
                    ),
                    &r,
                    &["retry-after", "ratelimit", "ratelimit-policy"],
                    ok,
                );
            }
            None => self.expect_text(
                &format!("429 within {max} requests"),
                &format!("{allowed} × 200 and no 429"),
                false,
            ),
        }
        Ok(())
    }

    async fn admin(&mut self) -> Result<Session, Stop> {
        let admin = self
            .login_step(
                "Admin: log in as admin (scope `admin`)",
                "admin",
                "admin-password",
                On::B,
            )
            .await?;
        self.begin("GET /admin/stats with the admin's token");
        let r = self.get(On::A, "/admin/stats", Some(&admin.access)).await?;
        let body = r.json();
        let counted = ["logins", "refreshes", "reuse_detections", "logouts"]
            .iter()
            .all(|k| body.get(*k).and_then(Value::as_u64).is_some());
        self.expect(
            "200 with counters (logins, refreshes, reuse detections, logouts ...)",
            &r,
            &[],
            r.status == 200 && counted,
        );
        Ok(admin)
    }

    async fn failure_ban(&mut self, admin: &Session) -> Result<(), Stop> {
        let maxretry = self.options.ban_maxretry;
        self.begin(&format!(
            "Failure ban: wrong passwords for `mallory` until the client is banned \
             ({maxretry} failures; the tampered token counted too)"
        ));
        let mut refused = 0u32;
        let mut banned = None;
        for i in 0..maxretry.saturating_add(1) {
            let on = if i % 2 == 0 { On::A } else { On::B };
            let body = json!({ "username": "mallory", "password": format!("guess-{i}") });
            let r = self.post(on, "/login", &[], Some(&body)).await?;
            match r.status.as_u16() {
                401 => refused += 1,
                _ => {
                    banned = Some(r);
                    break;
                }
            }
        }
        match banned {
            Some(r) => self.expect(
                &format!("401 invalid_credentials (got {refused}), then 429 with Retry-After"),
                &r,
                &["retry-after"],
                refused >= 1 && r.status == 429 && r.header("retry-after").is_some(),
            ),
            None => self.expect_text(
                "a 429 after the failures",
                &format!("{refused} × 401 and no 429"),
                false,
            ),
        }
        let body = json!({ "username": "alice", "password": "alice-password" });
        let r = self.post(On::B, "/login", &[], Some(&body)).await?;
        self.expect(
            "the right password from the banned client: still 429 (refused before any \
             password check)",
            &r,
            &["retry-after"],
            r.status == 429,
        );
        let r = self.get(On::A, "/me", Some(&admin.access)).await?;
        self.expect(
            "a valid token from the banned client: 429 as well",
            &r,
            &["retry-after"],
            r.status == 429,
        );
        Ok(())
    }

    // ---- helpers -------------------------------------------------------------------

    async fn login_step(
        &mut self,
        title: &str,
        user: &str,
        password: &str,
        on: On,
    ) -> Result<Session, Stop> {
        self.begin(&format!(
            "{title}: POST /login {{\"username\":\"{user}\",...}}{}",
            self.where_("", on)
        ));
        let body = json!({ "username": user, "password": password });
        let r = self.post(on, "/login", &[], Some(&body)).await?;
        let session = match (r.str_field("access_token"), r.str_field("refresh_token")) {
            (Some(access), Some(refresh)) => Some(Session { access, refresh }),
            _ => None,
        };
        let ok = r.status == 200
            && session.is_some()
            && r.str_field("token_type").as_deref() == Some("Bearer")
            && r.json().get("expires_in").and_then(Value::as_u64).is_some();
        self.expect(
            "200 {access_token, refresh_token (twr_…), token_type: Bearer, expires_in}",
            &r,
            &["cache-control"],
            ok,
        );
        session.ok_or_else(|| format!("login as {user} gave no tokens"))
    }
}
