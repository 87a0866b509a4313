//! What the code under test logged, as a subscriber sees it.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// Every `tracing` event of the process, formatted (no colours) into one shared buffer.
///
/// The subscriber is process-wide and installed once, by the first [`LogCapture::global`]
/// of the test binary: a subscriber scoped to one thread (`with_default`) can miss events
/// whose callsite another test thread registered first without one (the interest is cached
/// per callsite). Other tests of the binary log into the buffer too, so a test looks only at
/// the lines that carry something of its own (a path, a subject): [`lines_with`](Self::lines_with).
///
/// ```
/// use tokenward_testsupport::LogCapture;
///
/// let logs = LogCapture::global();
/// tracing::warn!(path = "/only-this-test", "refused");
/// let lines = logs.lines_with("/only-this-test");
/// assert_eq!(lines.len(), 1);
/// assert!(lines[0].contains("refused"));
/// ```
#[derive(Clone, Debug, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// The process-wide capture, installing its subscriber on first use.
    ///
    /// # Panics
    /// If another global subscriber was installed before (a test that cannot capture logs
    /// must fail, not pass without looking).
    #[expect(clippy::panic, reason = "test support: a failed setup fails the test")]
    pub fn global() -> LogCapture {
        static CAPTURE: OnceLock<LogCapture> = OnceLock::new();
        CAPTURE
            .get_or_init(|| {
                let capture = LogCapture::default();
                let subscriber = tracing_subscriber::fmt()
                    .with_writer(capture.clone())
                    .with_ansi(false)
                    .finish();
                if let Err(err) = tracing::subscriber::set_global_default(subscriber) {
                    panic!("LogCapture: another global tracing subscriber is installed: {err}");
                }
                capture
            })
            .clone()
    }

    /// Everything logged so far.
    pub fn contents(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The logged lines that contain `needle`.
    pub fn lines_with(&self, needle: &str) -> Vec<String> {
        self.contents()
            .lines()
            .filter(|line| line.contains(needle))
            .map(str::to_owned)
            .collect()
    }
}

impl Write for LogCapture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;

    fn make_writer(&'a self) -> LogCapture {
        self.clone()
    }
}
