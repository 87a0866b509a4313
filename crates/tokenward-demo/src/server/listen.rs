//! Serving the demo: binding, graceful shutdown, a background server for tests.

use std::net::SocketAddr;

use tokenward_claims::KeySet;

use super::{Demo, DemoConfig, StartError};

/// Binds `config.bind` and serves `demo` until `shutdown` resolves, then finishes the
/// requests in flight. `on_listening` gets the bound address before the first request is
/// accepted.
pub async fn serve(
    demo: &Demo,
    bind: SocketAddr,
    on_listening: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|source| StartError::Bind { addr: bind, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| StartError::Bind { addr: bind, source })?;
    on_listening(addr);
    axum::serve(
        listener,
        demo.router()
            .into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .map_err(|source| StartError::Bind { addr, source })
}

/// A demo served on a background task (tests, embedding): stops when dropped.
#[derive(Debug)]
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), StartError>>>,
}

impl Running {
    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Graceful shutdown, waiting for the server task to end.
    pub async fn stop(mut self) -> Result<(), StartError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.unwrap_or(Ok(())),
            None => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Builds the demo for `config` with `keys` and serves it on a background task (on
/// `config.bind`; use port 0 for a free port).
pub async fn spawn(config: &DemoConfig, keys: KeySet) -> Result<Running, StartError> {
    let demo = Demo::new(config, keys)?;
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.bind,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.bind,
        source,
    })?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            demo.router()
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stopped.await;
        })
        .await
        .map_err(|source| StartError::Bind { addr, source })
    });
    Ok(Running {
        addr,
        stop: Some(stop),
        task: Some(task),
    })
}
