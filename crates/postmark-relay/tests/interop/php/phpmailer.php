<?php
// PHPMailer (Debian's libphp-phpmailer) over SMTP to the relay at 127.0.0.1:$RELAY_PORT, as a
// shop would send an order confirmation: HTML with a text alternative, Cc, Bcc, an attachment.
require '/usr/share/php/libphp-phpmailer/autoload.php';

use PHPMailer\PHPMailer\PHPMailer;

$mail = new PHPMailer(true);
$mail->isSMTP();
$mail->Host = '127.0.0.1';
$mail->Port = (int) getenv('RELAY_PORT');
$mail->SMTPAuth = false;
$mail->SMTPAutoTLS = false;
$mail->CharSet = PHPMailer::CHARSET_UTF8;
$mail->setFrom('shop@example.com', 'Shop Müller');
$mail->addAddress('ann@example.org', 'Ann Example');
$mail->addCC('cc@example.org');
$mail->addBCC('audit@example.net');
$mail->Subject = 'Your order #42 – confirmed';
$mail->isHTML(true);
$mail->Body = '<p>Thanks for your <b>order</b>.</p>';
$mail->AltBody = 'Thanks for your order.';
$mail->addStringAttachment("id,total\n42,9.99\n", 'invoice.csv', PHPMailer::ENCODING_BASE64, 'text/csv');
$mail->send();
echo "sent\n";
