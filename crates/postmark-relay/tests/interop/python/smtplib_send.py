"""Python's smtplib as applications use it, against the relay at 127.0.0.1:<port>.

1. One message to 60 recipients (30 named in To, 30 only in the envelope).
2. An SMTPUTF8 message: a sender and a recipient at an internationalized domain, UTF-8 display
   names and subject, and one recipient whose local part is not ASCII.

Prints one JSON line per send: the recipients refused, with their replies.
"""

import json
import smtplib
import sys
from email.message import EmailMessage
from email.policy import SMTPUTF8

port = int(sys.argv[1])


def refused_json(refused):
    return {rcpt: [code, text.decode("utf-8")] for rcpt, (code, text) in refused.items()}


rcpt = [f"p{i}@example.org" for i in range(60)]
msg = EmailMessage()
msg["From"] = "Python App <py@example.com>"
msg["To"] = ", ".join(rcpt[:30])
msg["Subject"] = "smtplib sixty"
msg.set_content("hello sixty\n")
with smtplib.SMTP("127.0.0.1", port) as smtp:
    print(json.dumps({"send": "sixty", "refused": refused_json(smtp.send_message(msg, to_addrs=rcpt))}))

msg = EmailMessage(policy=SMTPUTF8)
msg["From"] = "Jürgen Müller <info@bücher.de>"
msg["To"] = "Kunde Köln <kunde@bücher.de>, jörg@example.com"
msg["Subject"] = "Grüße aus Köln"
msg.set_content("Schöne Grüße\n")
with smtplib.SMTP("127.0.0.1", port) as smtp:
    # send_message sees the non-ASCII addresses and asks for SMTPUTF8 itself.
    print(json.dumps({"send": "smtputf8", "refused": refused_json(smtp.send_message(msg))}, ensure_ascii=False))
