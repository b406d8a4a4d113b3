"""Session fixtures for the models tests (data builders live in models_synthetic)."""
import pytest

from models_synthetic import make_design


@pytest.fixture(scope="session")
def design():
    return make_design()


@pytest.fixture(scope="session")
def design3():
    return make_design(n=150, n_classes=3, seed=1)


@pytest.fixture(autouse=True, scope="session")
def one_blas_thread():
    """Tests fit tiny matrices, where BLAS threads only contend (evaluate does the same)."""
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=1, user_api="blas"):
        yield
