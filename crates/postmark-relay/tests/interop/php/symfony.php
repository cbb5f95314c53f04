<?php
// Symfony Mailer (Debian's php-symfony-mailer) over smtp:// to the relay at
// 127.0.0.1:$RELAY_PORT: text and HTML, a Bcc, an attachment.
require '/usr/share/php/Symfony/Component/Mailer/autoload.php';

use Symfony\Component\Mailer\Mailer;
use Symfony\Component\Mailer\Transport;
use Symfony\Component\Mime\Address;
use Symfony\Component\Mime\Email;

$mailer = new Mailer(Transport::fromDsn('smtp://127.0.0.1:' . getenv('RELAY_PORT')));
$email = (new Email())
    ->from(new Address('app@example.com', 'Symfony App'))
    ->to(new Address('ann@example.org', 'Ann Example'))
    ->bcc('audit@example.net')
    ->subject('Symfony over smtp')
    ->text("Plain text from Symfony.\n")
    ->html('<p>HTML from <i>Symfony</i>.</p>')
    ->attach("%PDF-1.4 fake\n", 'report.pdf', 'application/pdf');
$mailer->send($email);
echo "sent\n";
