//! The revocation and combined suites on the application's own cluster client and (feature
//! `deadpool`) cluster pool: the stores' code is the same on every kind, these two cover the
//! pipelined check and the Guard's per-slot scripts through another `ConnectionLike`.
mod client_revocation {
    tokenward_revocation::revocation_conformance_tests!(
        fixture = super::super::ClusterFixture,
        setup = super::super::ClusterFixture::byo_client
    );
}

mod client_combined {
    tokenward_guard::combined_conformance_tests!(
        fixture = super::super::ClusterFixture,
        setup = super::super::ClusterFixture::byo_client
    );
}

#[cfg(feature = "deadpool")]
mod pool_revocation {
    tokenward_revocation::revocation_conformance_tests!(
        fixture = super::super::ClusterFixture,
        setup = super::super::ClusterFixture::byo_pool
    );
}

#[cfg(feature = "deadpool")]
mod pool_combined {
    tokenward_guard::combined_conformance_tests!(
        fixture = super::super::ClusterFixture,
        setup = super::super::ClusterFixture::byo_pool
    );
}
