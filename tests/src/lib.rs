//! End-to-end tests of the ephemerd binary against real containerd; see tests/tests/.
