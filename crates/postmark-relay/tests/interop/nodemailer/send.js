// nodemailer as an application uses it: one message to 60 recipients (20 in To with names, 5 in
// Cc, 35 in Bcc) over plain SMTP to the relay at 127.0.0.1:<port>. Prints what nodemailer
// resolved with; exits 1 if it threw.
const nodemailer = require("nodemailer");

const port = Number(process.argv[2]);
const transport = nodemailer.createTransport({ host: "127.0.0.1", port, secure: false, ignoreTLS: true });
const rcpt = Array.from({ length: 60 }, (_, i) => `n${i}@example.org`);
transport
  .sendMail({
    from: '"Node App" <node@example.com>',
    to: rcpt.slice(0, 20).map((address, i) => ({ name: `Reader ${i}`, address })),
    cc: rcpt.slice(20, 25),
    bcc: rcpt.slice(25),
    subject: "nodemailer sixty",
    text: "hello from node",
    html: "<p>hello from <b>node</b></p>",
    attachments: [{ filename: "notes.txt", content: "some notes\n" }],
  })
  .then((info) => {
    console.log(JSON.stringify({ accepted: info.accepted.length, rejected: info.rejected.length, response: info.response }));
  })
  .catch((e) => {
    console.error(e);
    process.exit(1);
  });
