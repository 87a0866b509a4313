//! [`redact_url`]: a store URL as logs and error messages may show it.

/// `url` with the password of its userinfo (`user:password@`) replaced by `***`, for logs and
/// errors. A userinfo without `:` is hidden whole (some clients read `redis://secret@host` as a
/// password), and anything that is not `scheme://…` is not shown at all (a key/value
/// connection string may carry `password=`). Every tokenward store backend redacts its URLs
/// with it.
///
/// ```
/// use tokenward_core::redact_url;
/// assert_eq!(redact_url("postgres://app:s3cret@db/app"), "postgres://app:***@db/app");
/// assert_eq!(redact_url("host=db password=s3cret"), "<unparseable URL>");
/// ```
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // Not a URL we understand: it might be anything, show nothing of it.
        return "<unparseable URL>".to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        None => url.to_owned(),
        Some((userinfo, host)) => {
            let shown = match userinfo.split_once(':') {
                Some((user, _password)) => format!("{user}:***"),
                None => "***".to_owned(),
            };
            format!("{scheme}://{shown}@{host}{tail}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        for (url, shown) in [
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            ("redis://:pw@h:1/0", "redis://:***@h:1/0"),
            ("redis://alice:pw@h", "redis://alice:***@h"),
            ("redis://pw@h/2", "redis://***@h/2"),
            ("rediss://a:p@ss:w@rd@h:6380", "rediss://a:***@h:6380"),
            ("redis://h/0?password=x", "redis://h/0?password=x"),
            ("unix:///run/redis.sock", "unix:///run/redis.sock"),
            ("garbage:pw@h", "<unparseable URL>"),
            (
                "postgres://u:p@h:5432/db?sslmode=require",
                "postgres://u:***@h:5432/db?sslmode=require",
            ),
            ("postgres://u:p@ss@h/db", "postgres://u:***@h/db"),
            ("postgres://h/db", "postgres://h/db"),
            ("host=h user=u password=p", "<unparseable URL>"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }
}
