crowd = await nbstream.aload_test(server, connections=200, duration=3, progress=False)
for run, users in ((probe, 50), (crowd, 200)):
    value = run.summary()["value"]
    in_flight = value["throughput"] * run.messages["latency"].mean()  # Little's law
    print(f"{users} connections: {value['throughput']:,.0f} chats/s, "
          f"p50 {value['latency_p50'] * 1000:,.0f} ms, in flight about {in_flight:,.0f}")
