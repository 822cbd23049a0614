from collections import Counter

two = nbstream.connect(url, protocol="json")
for symbol in ("ACME", "INIT"):
    two.request({"type": "subscribe", "symbol": symbol},
                until=lambda m: m.type == "subscribed", timeout=5)
counts = Counter(two.recv(timeout=5).data["symbol"] for _ in range(20))
for symbol in ("ACME", "INIT"):
    two.request({"type": "unsubscribe", "symbol": symbol},
                until=lambda m: m.type == "unsubscribed", timeout=5)
assert set(counts) == {"ACME", "INIT"}
counts
