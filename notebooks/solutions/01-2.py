panel.message.value = "hello, class"
panel.broadcast_button.click()
print(alice.recv(timeout=5).text, "|", bob.recv(timeout=5).text)
