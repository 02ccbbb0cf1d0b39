"""SPEC §6: many clients at once through a real gunicorn, then the books must balance."""

import random
import re
from concurrent.futures import ThreadPoolExecutor

import requests

from app.audit import audit

CLIENTS = 12
REQUESTS_PER_CLIENT = 40
SYMBOLS = ("HOT", "WARM")


def post(session: requests.Session, url: str, body: str) -> str:
    response = session.post(url, data=body, headers={"Content-Type": "application/xml"}, timeout=30)
    assert response.status_code == 200, response.text
    return response.text


def trade(url: str, account: str, seed: int) -> list[str]:
    """One client: crossing buys and sells, queries and cancels of its own orders."""
    rng = random.Random(seed)
    own_orders: list[str] = []
    errors = []
    with requests.Session() as session:
        for _ in range(REQUESTS_PER_CLIENT):
            roll = rng.random()
            if own_orders and roll < 0.15:
                body = f'<cancel id="{rng.choice(own_orders)}"/>'
            elif own_orders and roll < 0.25:
                body = f'<query id="{rng.choice(own_orders)}"/>'
            else:
                amount = rng.randint(1, 50) * rng.choice((1, -1))
                price = f"{rng.randint(95, 105)}.{rng.randint(0, 99):02d}"
                body = f'<order sym="{rng.choice(SYMBOLS)}" amount="{amount}" limit="{price}"/>'
            reply = post(session, url, f'<transactions id="{account}">{body}</transactions>')
            own_orders += re.findall(r'<opened [^>]*id="(\d+)"', reply)
            errors += [
                error
                for error in re.findall(r"<error[^>]*>([^<]*)</error>", reply)
                if "no open shares" not in error  # a cancel that lost the race to a fill
            ]
    return errors


def test_parallel_clients_keep_the_books_balanced(server, engine):
    accounts = [str(100 + n) for n in range(CLIENTS)]
    grants = "".join(f'<account id="{a}">100000</account>' for a in accounts)
    setup = "".join(f'<account id="{a}" balance="10000000"/>' for a in accounts) + "".join(
        f'<symbol sym="{symbol}">{grants}</symbol>' for symbol in SYMBOLS
    )
    with requests.Session() as session:
        assert "<error" not in post(session, server, f"<create>{setup}</create>")

    with ThreadPoolExecutor(CLIENTS) as pool:
        errors = list(pool.map(trade, [server] * CLIENTS, accounts, range(CLIENTS)))

    assert errors == [[]] * CLIENTS
    with engine.connect() as connection:
        traded = connection.exec_driver_sql("SELECT count(*) FROM executions").scalar()
    assert traded > 0, "the workload should cross orders"
    assert [(f.check, f.violations) for f in audit(engine) if f.violations] == []
