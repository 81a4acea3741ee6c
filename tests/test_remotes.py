"""Sharing results through a DVC remote (local folder, SSH to a real sshd, S3 to a moto server), checked from fresh
`git clone`s that get their data from the remote alone."""

import getpass
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
from moto.server import ThreadedMotoServer
from pipeline_project import (
    Project,
    clone,
    free_port,
    make_image_folder_archive,
    tiny_params,
)

pytestmark = pytest.mark.slow  # real dvc/git end to end, subprocesses, servers

SSHD = Path("/usr/sbin/sshd")
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A committed tiny run, everything in the local cache; each test shares it through its own default remote."""
    root = tmp_path_factory.mktemp("remotes")
    archive = make_image_folder_archive(root / "cifar10-tiny.tar.gz")
    project = Project.create(root / "repo", **tiny_params(archive))
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        project.env.pop(name, None)
    project.env |= FAKE_AWS
    project.repro()
    project.commit("tiny run")
    return project


def add_default_remote(project, name, url, config=None, local=None):
    """`dvc remote add -d` and `dvc remote modify` (committed in .dvc/config), credentials with
    `dvc remote modify --local` (.dvc/config.local, which git ignores), then commit."""
    project.dvc("remote", "add", "-d", name, url)
    for option, value in (config or {}).items():
        project.dvc("remote", "modify", name, option, str(value))
    for option, value in (local or {}).items():
        project.dvc("remote", "modify", "--local", name, option, str(value))
    project.commit(f"share through the {name} remote")
    tracked = project.git("ls-files", ".dvc").stdout.split()
    assert ".dvc/config" in tracked and ".dvc/config.local" not in tracked
    for value in (local or {}).values():
        assert str(value) not in (project.path / ".dvc/config").read_text()


def pull_into_fresh_clone(project, path, local=None):
    """A fresh clone, given the same local remote settings, pulls everything and is up to date without a rerun."""
    copy = clone(project, path)
    assert not (copy.path / "models/rgb/seed42.keras").exists()
    name = copy.dvc("config", "core.remote").stdout.strip()
    for option, value in (local or {}).items():
        copy.dvc("remote", "modify", "--local", name, option, str(value))
    copy.dvc("pull")
    assert "Data and pipelines are up to date" in copy.dvc("status").stdout
    assert copy.repro().stages == []
    for output in (
        "models/gray/seed42.keras",
        "models/rgb/seed42.keras",
        "data/prepared/rgb.npz",
        "data/raw/cifar10.npz",
    ):
        assert (copy.path / output).read_bytes() == (project.path / output).read_bytes()
    return copy


def test_a_local_remote_gives_a_fresh_clone_everything(project, tmp_path):
    add_default_remote(project, "local", str(tmp_path / "store"))
    assert "files pushed" in project.dvc("push").stdout
    assert "Everything is up to date" in project.dvc("push").stdout
    pull_into_fresh_clone(project, tmp_path / "clone")


def test_a_fresh_clone_is_up_to_date_right_after_dvc_pull(project, tmp_path):
    add_default_remote(project, "plain", str(tmp_path / "store"))
    project.dvc("push")
    copy = clone(project, tmp_path / "clone")
    copy.dvc("pull")
    assert "Data and pipelines are up to date" in copy.dvc("status").stdout


def test_push_with_the_run_cache_lets_a_fresh_clone_repro_with_pull_run_nothing(project, tmp_path):
    store = tmp_path / "store"
    add_default_remote(project, "runs", str(store))
    # A run that is not committed: the download stage with other (result-neutral) parameters, into the run cache.
    project.set_params(**{"download.retries": 3})
    assert project.repro().stages == ["download"]
    project.dvc("push", "--run-cache")
    assert any((store / "runs").iterdir())
    project.git("checkout", "-q", "params.yaml", "dvc.lock")

    copy = clone(project, tmp_path / "clone")
    result = copy.repro("--pull")
    assert result.stages == [] and "Running stage" not in result.stdout
    assert "Pulling data for stage: 'train_rgb@42'" in result.stdout
    for output in ("models/gray/seed42.keras", "models/rgb/seed42.keras", "data/prepared/rgb.npz"):
        assert (copy.path / output).exists()

    # The uncommitted run is restored from the run cache instead of run again.
    copy.set_params(**{"download.retries": 3})
    result = copy.repro("--pull")
    assert result.stages == [] and "Stage 'download' is cached - skipping run, checking out outputs" in result.stdout
    assert "Data and pipelines are up to date" in copy.dvc("status").stdout


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """OpenSSH's sshd on a free loopback port, for one user key, as the user running the tests."""
    assert SSHD.exists(), f"{SSHD} is missing: install openssh-server (.ci/run does)"
    folder = tmp_path_factory.mktemp("sshd")
    for key in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / key)], check=True)
    shutil.copy(folder / "user_key.pub", folder / "authorized_keys")
    port = free_port()
    (folder / "sshd_config").write_text(
        f"Port {port}\n"
        "ListenAddress 127.0.0.1\n"
        f"HostKey {folder / 'host_key'}\n"
        f"AuthorizedKeysFile {folder / 'authorized_keys'}\n"
        "PubkeyAuthentication yes\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "PermitRootLogin prohibit-password\n"
        "StrictModes no\n"
        "UsePAM no\n"
        f"PidFile {folder / 'sshd.pid'}\n"
        "Subsystem sftp internal-sftp\n"
    )
    try:  # sshd refuses to start without its privilege separation folder (systemd would make it)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    except PermissionError:
        pytest.fail("sshd needs /run/sshd: create it as root (or run the tests as root, as CI does)")
    log = folder / "sshd.log"
    with open(log, "w") as output:
        command = [str(SSHD), "-D", "-e", "-f", str(folder / "sshd_config")]
        server = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            if server.poll() is not None:
                pytest.fail(f"sshd exited ({server.returncode}):\n{log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"sshd does not accept connections on port {port}:\n{log.read_text()}")
                time.sleep(0.1)
        yield SimpleNamespace(port=port, user=getpass.getuser(), key=folder / "user_key", log=log)
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_an_ssh_remote_gives_a_fresh_clone_everything(project, sshd, tmp_path):
    store = tmp_path / "store"
    add_default_remote(project, "ssh", f"ssh://{sshd.user}@127.0.0.1:{sshd.port}{store}", local={"keyfile": sshd.key})
    assert "files pushed" in project.dvc("push").stdout
    assert any((store / "files/md5").iterdir())
    pull_into_fresh_clone(project, tmp_path / "clone", local={"keyfile": sshd.key})
    assert "Accepted publickey" in sshd.log.read_text()


@pytest.fixture(scope="module")
def s3_endpoint():
    """An in-process moto S3 server on a free loopback port, with an empty bucket `cifarcam`."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in FAKE_AWS.items():
            patch.setenv(name, value)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            endpoint = f"http://127.0.0.1:{server.get_host_and_port()[1]}"
            boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="cifarcam")
            yield endpoint
        finally:
            server.stop()


def test_an_s3_remote_gives_a_fresh_clone_everything(project, s3_endpoint, tmp_path):
    credentials = {"access_key_id": "testing", "secret_access_key": "testing"}
    add_default_remote(project, "s3", "s3://cifarcam/store", config={"endpointurl": s3_endpoint}, local=credentials)

    assert "files pushed" in project.dvc("push").stdout
    stored = boto3.client("s3", endpoint_url=s3_endpoint).list_objects_v2(Bucket="cifarcam", Prefix="store/files/md5/")
    assert stored["KeyCount"] > 0
    pull_into_fresh_clone(project, tmp_path / "clone", local=credentials)
