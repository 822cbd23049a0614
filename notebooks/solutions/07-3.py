async def price(message, session):
    yield {"type": "quote", "symbol": message.data.get("symbol"), "price": 100.0}


server = nbstream.serve(price, protocol="json")
mine = await nbstream.aload_test(
    server.url, connections=20, messages=50, message_type=None, progress=False,
    payload='{{"type": "price", "symbol": "S{connection}"}}')
mine.compare(result, labels=("nbstream", "websockets"))
