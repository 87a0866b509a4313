//! Counters of `INFO`, read through redis-rs's [`InfoDict`].

use std::collections::BTreeMap;

use redis::InfoDict;

/// Calls per command of `INFO commandstats` (`cmdstat_evalsha:calls=12,usec=…` gives
/// `"evalsha" → 12`; subcommands keep their `|`: `"script|flush"`).
pub fn command_calls(info: &InfoDict) -> BTreeMap<String, u64> {
    info.keys()
        .filter_map(|key| {
            let command = key.strip_prefix("cmdstat_")?;
            let stats: String = info.get(key)?;
            let calls = stats
                .split(',')
                .find_map(|field| field.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((command.to_owned(), calls))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_per_command() {
        let info = InfoDict::new(
            "# Commandstats\r\ncmdstat_evalsha:calls=12,usec=30,usec_per_call=2.5\r\n\
             cmdstat_script|flush:calls=1,usec=3\r\ncmdstat_get:usec=1\r\n\
             total_commands_processed:99\r\n",
        );
        let calls = command_calls(&info);
        assert_eq!(
            calls.into_iter().collect::<Vec<_>>(),
            [("evalsha".to_owned(), 12), ("script|flush".to_owned(), 1)]
        );
        assert_eq!(info.get::<u64>("total_commands_processed"), Some(99));
    }
}
