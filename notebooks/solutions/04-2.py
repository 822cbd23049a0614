await first.aclose()
again = await nbstream.aconnect(server, user="bo")
again
