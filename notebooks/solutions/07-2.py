text = nbstream.connect(url, protocol="text")
[reply] = text.request('{"type": "price", "symbol": "ACME"}', timeout=5)
print(reply.type, repr(reply.data))
json.loads(reply.data)
