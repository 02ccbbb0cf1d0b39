"""Server processes the tests start: stopped as an operator would, killed if they hang."""

import subprocess


def stop_gracefully(process: subprocess.Popen, timeout: float) -> int:
    """SIGTERM, then the exit status once the server has finished its requests in flight;
    a server still running after `timeout` is killed and the test fails."""
    if process.poll() is None:
        process.terminate()
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
